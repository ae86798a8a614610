"""Time spent in the cyclic garbage collector, per process, for benches.

On the path (``PYTHONPATH=bench/gc_stats``) with ``LRS_BENCH_GC_STATS=DIR``
set, every Python process started (the service's workers included) times
each collection by generation (the CPU time of the thread it ran in) (``gc.callbacks``) and writes the totals, with
its own CPU seconds, to ``DIR/<pid>.json`` every second.  Without the
variable it does nothing.  Used by ``bench/seal_gap_profile.py --gc-stats``.
"""

import os

_DIR = os.environ.get("LRS_BENCH_GC_STATS")
if _DIR:
    import gc
    import json
    import sys
    import threading
    import time

    _seconds = [0.0, 0.0, 0.0]
    _count = [0, 0, 0]
    _collected = [0, 0, 0]
    _started = [0.0]

    def _callback(phase, info):
        if phase == "start":
            _started[0] = time.thread_time()
        else:
            generation = info["generation"]
            _seconds[generation] += time.thread_time() - _started[0]
            _count[generation] += 1
            _collected[generation] += info.get("collected", 0)

    gc.callbacks.append(_callback)

    def _write():
        path = os.path.join(_DIR, f"{os.getpid()}.json")
        while True:
            time.sleep(1.0)
            times = os.times()
            record = {"argv": sys.argv, "cpu_s": times.user + times.system, "gc_s": list(_seconds),
                      "collections": list(_count), "collected": list(_collected), "at": time.time()}
            try:
                with open(path + ".tmp", "w") as f:
                    json.dump(record, f)
                os.replace(path + ".tmp", path)
            except OSError:
                pass

    threading.Thread(target=_write, name="gc-stats", daemon=True).start()
