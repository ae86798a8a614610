"""What the two private nats-py calls of lrs.nats save, against nats-py's public API.

lrs.nats keeps two speed choices that reach into nats-py's internals
(pyproject pins the nats-py range; tests/*/nats/test_private_api.py fail on a
release that moved them).  This measures each against the public call it
replaces, on a real nats-server (lrs.runtime.nats), alternating the two
variants ``--rounds`` times so that a busy machine weighs on both alike:

* receive: ``--messages`` messages with the relay's headers (an
  lrs.event_contract message) published and read back through a plain
  subscription in this process, the reader with ``use_fast_header_parse``
  (``Client._process_headers`` replaced) and without it (nats-py's own
  parse); the publishing is the same in both, so the difference is the parse;
* publish: the same messages published without acknowledgement as
  lrs.nats.bus does it (frames handed to ``Client._send_command``) and
  through ``Client.publish``, one call per message.

Reports CPU microseconds of this process per message (median of the rounds)
and writes bench/results/nats-private-api-<UTC time>.json.

    python bench/nats_private_api.py --messages 50000 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402

from lrs.event_contract import OutgoingMessage, event_message  # noqa: E402
from lrs.eventlog import EventRecord, record_hash  # noqa: E402
from lrs.nats import bus  # noqa: E402
from lrs.nats.headers import use_fast_header_parse  # noqa: E402
from lrs.runtime.nats import EmbeddedNats  # noqa: E402
from bench.run_record import add_result_options, load_average, write_result  # noqa: E402


def relay_messages(count: int, subject: str) -> list[OutgoingMessage]:
    payload = b'{"actor":{"mbox":"mailto:a@example.org"},"id":"x","object":{"id":"http://example.org/u"}}' * 3
    messages = []
    for position in range(1, count + 1):
        draft = EventRecord(position, uuid.uuid4(), "default", "statement", None, datetime.now(timezone.utc),
                            payload, b"\x01" * 32, b"")
        draft = EventRecord(**{**{f: getattr(draft, f) for f in draft.__struct_fields__}, "hash": record_hash(draft)})
        message = event_message(draft)
        messages.append(OutgoingMessage(subject, message.data, message.headers))
    return messages


async def receive_cpu(url: str, messages: list[OutgoingMessage], fast: bool) -> float:
    """CPU seconds of this process to publish ``messages`` (always the same
    way) and receive them all: the two variants differ only in the parse."""
    publisher = await nats.connect(url, pending_size=1 << 30)
    consumer = await nats.connect(url)
    if fast:
        assert use_fast_header_parse(consumer)
    done = asyncio.Event()
    received = 0

    async def on_message(msg: object) -> None:
        nonlocal received
        received += 1
        if received == len(messages):
            done.set()

    await consumer.subscribe(messages[0].subject, cb=on_message, pending_msgs_limit=len(messages) + 1,
                             pending_bytes_limit=-1)
    await consumer.flush()
    start = time.process_time()
    await bus._publish_plain(publisher, messages)
    await publisher.flush()
    await asyncio.wait_for(done.wait(), 120)
    spent = time.process_time() - start
    await consumer.close()
    await publisher.close()
    return spent


async def publish_cpu(url: str, messages: list[OutgoingMessage], frames: bool) -> float:
    client = await nats.connect(url, pending_size=1 << 30)
    start = time.process_time()
    if frames:
        await bus._publish_plain(client, messages)
    else:
        for message in messages:
            await client.publish(message.subject, message.data, headers=dict(message.headers))
    await client.flush()
    spent = time.process_time() - start
    await client.close()
    return spent


async def main(args: argparse.Namespace) -> dict:
    work = Path(tempfile.mkdtemp(prefix="lrs-bench-nats-"))
    server = EmbeddedNats(work / "nats")
    url = await server.start()
    try:
        messages = relay_messages(args.messages, "bench.private")
        results: dict[str, list[float]] = {"receive_fast": [], "receive_public": [], "publish_frames": [],
                                           "publish_public": []}
        for _ in range(args.rounds):
            for name, run in (
                ("receive_fast", lambda: receive_cpu(url, messages, True)),
                ("receive_public", lambda: receive_cpu(url, messages, False)),
                ("publish_frames", lambda: publish_cpu(url, messages, True)),
                ("publish_public", lambda: publish_cpu(url, messages, False)),
            ):
                results[name].append(await run() / len(messages) * 1e6)
        return {name: {"us_per_message": [round(v, 2) for v in values],
                       "median_us_per_message": round(statistics.median(values), 2)}
                for name, values in results.items()}
    finally:
        await server.stop()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    add_result_options(parser, label=False)
    args = parser.parse_args()
    figures = asyncio.run(main(args))
    for name, value in figures.items():
        print(f"{name:16} {value['median_us_per_message']:8.2f} µs/message  {value['us_per_message']}")
    result = {
        "bench": "nats-private-api", "time": datetime.now(timezone.utc).isoformat(), "messages": args.messages,
        "rounds": args.rounds, "load_average": load_average(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "note": args.note, "results": figures,
    }
    if not args.no_write:
        write_result(result, "nats-private-api")


if __name__ == "__main__":
    run()
