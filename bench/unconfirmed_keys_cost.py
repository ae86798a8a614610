"""bench/unconfirmed_keys_cost.py: CPU µs per request of 101 keys (100 new learners and the authority) of the unconfirmed-key bookkeeping."""
import os, sys, time, timeit
sys.path.insert(0, ".")
from lrs.store.unconfirmed_keys import UnconfirmedKeys
u = UnconfirmedKeys(500000)
refs = [(os.urandom(16).hex(), 1) for _ in range(101)]
w = os.urandom(60)
def note():
    s = time.monotonic()
    for p, g in refs: u.note("default", p, g, w, s)
def of(): return u.of("default", refs)
def confirm(): u.confirm("default", refs)
def cycle(): note(); of(); confirm()
n = 2000
for name, f in (("note+of+confirm", cycle),):
    print(name, "%.1f CPU us per 101 keys" % (min(timeit.repeat(f, number=n, repeat=7, timer=time.process_time)) / n * 1e6))
print("of with nothing noted: %.3f CPU us" % (min(timeit.repeat(of, number=n * 10, repeat=7, timer=time.process_time)) / n / 10 * 1e6))
