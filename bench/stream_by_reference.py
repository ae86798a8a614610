"""What a message by reference (headers only, the payload read from
PostgreSQL: docs/contracts.md "Messages by reference") costs on JetStream's
disk, against the relay's inline message, with the stream's own definition
(S2) on a private nats-server: the alternative to interest retention weighed
in docs/scaling.md "Bytes per statement in all with interest retention".

The messages are the relay's (lrs.event_contract.to_message) for events with
the log's header values: a version 7 UUID, consecutive positions, a stored
time, two SHA-256 hashes chained, and bench/ingest.py's ~1,050-byte
statement as the inline payload.  The stream keeps them all (limits
retention: what a 30-day stream would hold).

    python bench/stream_by_reference.py --messages 20000

Results go to bench/results/stream-by-reference[-<branch>]-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import nats
from nats.js import api

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.ingest as ingest  # noqa: E402
from lrs.event_contract import LAST_POSITION, RelayedEvent, format_stored, to_message  # noqa: E402
from lrs.nats.bus import STREAM_NAME, load_stream_config  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NATS_SERVER = Path(sys.executable).parent / "nats-server"


def events(count: int) -> list[RelayedEvent]:
    start = datetime(2026, 3, 1, tzinfo=timezone.utc)
    previous = "0" * 64
    made = []
    for n in range(1, count + 1):
        payload = ingest._statement(n, str(uuid.uuid4()), str(uuid.uuid4())).encode()
        digest = hashlib.sha256(previous.encode() + payload).hexdigest()
        made.append(RelayedEvent(n, str(uuid.uuid7()) if hasattr(uuid, "uuid7") else str(uuid.uuid4()), "default",
                                 "statement", format_stored(start + timedelta(milliseconds=n)), payload,
                                 digest, previous))
        previous = digest
    return made


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


async def measure(port: int, store: Path, inline_max: int, count: int) -> dict:
    nc = await nats.connect(f"nats://127.0.0.1:{port}")
    try:
        js = nc.jetstream()
        await js.add_stream(load_stream_config().evolve(retention=api.RetentionPolicy.LIMITS))
        raw = 0
        for event in events(count):
            message = to_message(event, inline_max)
            raw += len(message.data) + sum(len(k) + len(v) + 4 for k, v in message.headers.items())
            await js.publish(message.subject, message.data, headers=dict(message.headers))
        info = await js.stream_info(STREAM_NAME)
        await nc.flush()
        on_disk = directory_bytes(store)
        await js.delete_stream(STREAM_NAME)
    finally:
        await nc.close()
    return {"messages": info.state.messages, "raw_bytes_per_message (data + header lines)": round(raw / count, 1),
            "jetstream_bytes_per_message": round(info.state.bytes / count, 1),
            "store_dir_bytes_per_message": round(on_disk / count, 1)}


async def run(args: argparse.Namespace) -> dict:
    results = {}
    for label, inline_max in (("inline (the relay's default)", LAST_POSITION), ("by reference (headers only)", 0)):
        store = Path(tempfile.mkdtemp(prefix="by-reference-", dir=args.scratch))
        port = 14_000 + os.getpid() % 1000
        server = subprocess.Popen([str(NATS_SERVER), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(1.0)
            results[label] = await measure(port, store, inline_max, args.messages)
        finally:
            server.terminate()
            server.wait()
            subprocess.run(["rm", "-rf", str(store)], check=False)
    print(json.dumps(results, indent=1), flush=True)
    return {"benchmark": "stream-by-reference", "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": "python bench/stream_by_reference.py " + " ".join(sys.argv[1:]),
            "nats_server": subprocess.run([str(NATS_SERVER), "--version"], capture_output=True, text=True).stdout.strip(),
            "compression": "s2", "result": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--scratch", default=tempfile.gettempdir())
    parser.add_argument("--branch", default="")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    record = asyncio.run(run(args))
    if not args.no_save:
        branch = f"-{args.branch}" if args.branch else ""
        out = RESULTS_DIR / f"stream-by-reference{branch}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
        out.write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
        print(f"saved {out}")


if __name__ == "__main__":
    main()
