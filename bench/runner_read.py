"""The projection runner's reading, alone: its CPU per message outside apply.

``lrs project`` reads the relay's messages from a durable pull consumer,
makes each a LogEvent, applies the batch and acknowledges it.  This bench
publishes ``--messages`` relay-shaped messages (the relay's seven headers, a
payload of ``--payload-bytes``) into an LRS_EVENTS stream of a private
nats-server, then runs the runner's own pull loop
(``projections.jetstream_loop._pull_batches``, its default batch sizes)
against it with an applier that applies nothing: every batch "commits" at
its last position at once, so what is measured is the reading, the
LogEvents, the acknowledgements and the loop, with the collector as the
runner has it.  Each round reads the stream again through a new consumer,
in a process of its own run by ``--tree``'s venv with ``--tree``'s code, so
that checkouts alternate on one machine:

    python bench/runner_read.py --tree start=/work/wt/base --tree this=. --rounds 4

Reports CPU µs per message of the reading process (user + system), median of
the rounds per tree, and writes bench/results/runner_read-<label>-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

READER = r"""
import asyncio, gc, json, os, resource, sys, time
sys.path.insert(0, os.getcwd())
import nats
from lrs.nats.bus import STREAM_NAME
from lrs.nats.headers import use_fast_header_parse
from lrs.nats.pull import PullConsumer
from projections import jetstream_loop
from projections.applying import BatchOutcome

url, durable, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])

class Applier:
    name = "bench"
    pool = None
    def __init__(self, stop):
        self.stop, self.applied, self.batches = stop, 0, 0
    async def apply_batch(self, events, *, fill_to=0):
        self.applied += len(events)
        self.batches += 1
        if self.applied >= expected:
            self.stop.set()
        last = max(e.position for e in events)
        return BatchOutcome(last, len(events), (), None)
    async def behind_relay(self):
        return False

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

async def main():
    nc = await nats.connect(url)
    use_fast_header_parse(nc)
    js = nc.jetstream()
    stop = asyncio.Event()
    applier = Applier(stop)
    make = getattr(jetstream_loop, "relay_consumer", None)  # a checkout from before it reads as PullConsumer
    pull = make(nc, durable) if make is not None else PullConsumer(nc, STREAM_NAME, durable)
    await pull.start()
    pulling = jetstream_loop.Pulling(batch_size=1000, fetch_timeout=0.1, retry_delay=1.0, on_batch=None,
                                     batch_interval=0.1, max_batch_size=5000)
    if os.environ.get("READ_GC") == "freeze":  # a variant: what exists at start frozen (gc.freeze)
        gc.collect()
        gc.freeze()
    collections, gc_s, began = [0, 0, 0], [0.0], [0.0]
    def count(phase, info):
        if phase == "start":
            collections[info["generation"]] += 1
            began[0] = time.process_time()
        else:
            gc_s[0] += time.process_time() - began[0]
    gc.callbacks.append(count)
    start, wall = cpu(), time.perf_counter()
    await jetstream_loop._pull_batches(applier, pull, js, durable, stop, pulling)
    spent, wall = cpu() - start, time.perf_counter() - wall
    await pull.close()
    await nc.close()
    print(json.dumps({"cpu_s": spent, "wall_s": wall, "messages": applier.applied, "batches": applier.batches,
                      "collections": collections, "gc_cpu_s": gc_s[0]}))

asyncio.run(main())
"""


def relay_messages(count: int, payload_bytes: int):  # -> list[OutgoingMessage]
    from lrs.event_contract import event_message
    from lrs.eventlog import EventRecord, record_hash

    payload = os.urandom(payload_bytes)  # a sealed, compressed payload looks random
    messages, prev = [], b"\x00" * 32
    for position in range(1, count + 1):
        draft = EventRecord(position, uuid.uuid4(), "default", "statement", None, datetime.now(timezone.utc),
                            payload, prev, b"")
        record = EventRecord(**{**{f: getattr(draft, f) for f in draft.__struct_fields__}, "hash": record_hash(draft)})
        prev = record.hash
        messages.append(event_message(record))
    return messages


async def fill(url: str, count: int, payload_bytes: int, durables: list[str]) -> None:
    """The stream, a consumer per reading to come (interest retention keeps
    a message only for the consumers it has when it comes), the messages."""
    import nats

    from lrs.nats import bus

    nc = await nats.connect(url, pending_size=1 << 30)
    js = nc.jetstream()
    await js.add_stream(bus.load_stream_config())
    for durable in durables:
        await js.add_consumer(bus.STREAM_NAME, bus.load_consumer_config(durable_name=durable))
    messages = relay_messages(count, payload_bytes)
    for start in range(0, count, 5000):
        await bus._publish_plain(nc, messages[start:start + 5000])
        await nc.flush()
    while (await js.stream_info(bus.STREAM_NAME)).state.messages < count:
        await asyncio.sleep(0.1)
    await nc.close()


def read_once(tree: Path, url: str, durable: str, count: int) -> dict:
    python = tree / ".venv" / "bin" / "python"
    # READ_SPY=FILE: the reading sampled by py-spy (raw format) into FILE
    spy = ["uvx", "py-spy", "record", "-r", "1000", "-f", "raw", "-o", os.environ["READ_SPY"], "--"] \
        if os.environ.get("READ_SPY") else []
    out = subprocess.run([*spy, str(python), "-c", READER, url, durable, str(count)], cwd=tree, check=True,
                         capture_output=True, text=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


async def main(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    from lrs.runtime.nats import EmbeddedNats

    work = Path(tempfile.mkdtemp(prefix="lrs-bench-read-", dir=args.work_dir))
    server = EmbeddedNats(work / "nats")
    url = await server.start()
    trees = [(name, Path(path).resolve()) for name, path in (t.split("=", 1) for t in args.tree)]
    runs: dict[str, list[dict]] = {name: [] for name, _ in trees}
    try:
        await fill(url, args.messages, args.payload_bytes,
                   [f"projection-bench-{n}" for n in range(1, args.rounds * len(trees) + 1)])
        n = 0
        for round_ in range(args.rounds):
            order = trees if round_ % 2 == 0 else trees[::-1]
            for name, tree in order:
                n += 1
                got = await asyncio.to_thread(read_once, tree, url, f"projection-bench-{n}", args.messages)
                got["us_per_message"] = round(got["cpu_s"] / got["messages"] * 1e6, 2)
                got["load_average"] = os.getloadavg()[0]
                runs[name].append(got)
                print(name, json.dumps(got), flush=True)
    finally:
        await server.stop()
    return {name: {"us_per_message": [r["us_per_message"] for r in rs],
                   "median_us_per_message": statistics.median(r["us_per_message"] for r in rs), "runs": rs}
            for name, rs in runs.items()}


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", required=True, help="NAME=CHECKOUT (its .venv runs it)")
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--payload-bytes", type=int, default=700)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--label", default="")
    parser.add_argument("--work-dir", default=None)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    started = time.time()
    figures = asyncio.run(main(args))
    for name, value in figures.items():
        print(f"{name:10} {value['median_us_per_message']:8.2f} µs/message  {value['us_per_message']}")
    result = {"bench": "runner_read", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "settings": vars(args), "seconds": round(time.time() - started, 1), "cpus": os.cpu_count(),
              "results": figures}
    if not args.no_write:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        path = ROOT / "bench" / "results" / f"runner_read-{args.label + '-' if args.label else ''}{stamp}.json"
        path.write_text(json.dumps(result, indent=1) + "\n")
        print("wrote", path)


if __name__ == "__main__":
    run()
