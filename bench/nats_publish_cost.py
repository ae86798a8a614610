"""nats-server's CPU per relayed event, by how the events are published.

``bench/ingest.py --start-service`` shows nats-server spending about 10 µs of
CPU per statement at batch 100.  This bench starts a nats-server of its own
(the one ``lrs serve`` runs, JetStream on file storage), creates the events
stream from its definition (``schemas/nats/LRS_EVENTS.json``), publishes the
ingest bench's statements as the relay does, and reads the server's CPU time
(user + system, ``/proc``) before and after each way of publishing:

* ``relay B``: the relay's own path (``Bus.publish_batch`` on an
  ``EventBatch``): the frames of B events written at once, only the last one
  acknowledged, for B = 100 and 1000 (``LRS_RELAY_BATCH_SIZE``, default 1000;
  under load a relay round carries what the writers committed meanwhile);
* ``each acked 100``: every message asks for an acknowledgement (the relay's
  fallback path);
* ``msg-id only 1000`` and ``no headers 1000``: the same data with fewer
  headers, to see what the contract's headers cost the server (the event
  contract, docs/contracts.md, needs all of them: measurement only);
* ``uncompressed 1000``: the relay's path on a stream without S2
  compression (the stream definition asks for S2: measurement only);
* ``relay 1000, no consumer``: the relay's path with no consumer on the
  stream, which then keeps nothing (interest retention); this is what
  ``bench/ingest.py`` with projections off measures, and the ways below
  split it (branch relay):
* ``msg-id only 1000, no consumer``, ``no headers 1000, no consumer``: as
  above with fewer headers (measurement only);
* ``window 10s 1000, no consumer``: the relay's path on a stream whose
  duplicate window is 10 seconds instead of 2 minutes (measurement only);
* ``zstd data 1000, no consumer``: the relay's frames with each event's
  stored zstd frame as data instead of its canonical JSON (about a quarter
  of the bytes; measurement only: the contract's data is the JSON).

``--ways`` picks some of them.  The server runs with the bench's
environment, so ``GOGC=400 python bench/nats_publish_cost.py`` measures
nats-server with Go's collector running a quarter as often; each result
records the server's peak resident memory (``VmHWM``).

Every way but the last has a durable consumer that selects every event and
acknowledges none, so the stream keeps each message, as it does while a
projection or forwarder is a moment behind.

Each way gets a new stream; the figures alternate over ``--rounds`` and the
median is reported.  Every message is acknowledged or verified as stored.

    python bench/nats_publish_cost.py                # 20,000 events a way, 3 rounds
    python bench/nats_publish_cost.py --events 50000 --rounds 5
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
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def _frames_without(records: list, formatter, keep_msg_id: bool) -> list[bytes]:
    """Frames of the records with only Nats-Msg-Id as header (or no header at all)."""
    from lrs.event_contract import event_subject

    frames = []
    for record in records:
        subject = event_subject(record.tenant, record.event_type).encode()
        data = record.payload
        if keep_msg_id:
            header = b"NATS/1.0\r\nNats-Msg-Id: %s\r\n\r\n" % str(record.event_id).encode()
            frames.append(b"HPUB %s  %d %d\r\n%s%s\r\n" % (subject, len(header), len(header) + len(data), header, data))
        else:
            frames.append(b"PUB %s  %d\r\n%s\r\n" % (subject, len(data), data))
    return frames


async def _run_way(url: str, way: str, records: list, server_pid: int) -> float:
    import nats
    import nats.js.api
    import nats.js.errors

    from lrs.eventlog import StoredFormatter, stored_texts_of
    from lrs.nats.bus import Bus, load_stream_config
    from lrs.nats.event_frames import EventBatch

    config = load_stream_config()
    if way.startswith("uncompressed"):
        config = config.evolve(compression=None)
    if way.startswith("window 10s"):
        config = config.evolve(duplicate_window=10.0)
    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        await js.delete_stream(config.name)
    except Exception:  # noqa: BLE001 - not there yet
        pass
    for attempt in range(50):  # the deleted stream's store may still be going away
        try:
            await js.add_stream(config)
            break
        except nats.js.errors.APIError:
            if attempt == 49:
                raise
            await asyncio.sleep(0.1)
    if not way.endswith("no consumer"):
        # A durable consumer that selects every event and has acknowledged none
        # yet (a projection a moment behind): the interest-retention stream
        # keeps each message, as it does in service.
        await js.add_consumer(config.name, nats.js.api.ConsumerConfig(
            durable_name="bench", ack_policy=nats.js.api.AckPolicy.EXPLICIT, filter_subject="lrs.events.>"))
    await nc.close()
    bus = Bus(url, stream_config=config)
    await bus.connect()
    await bus.ensure_stream()
    await bus.last_position()
    size = 100 if " 100" in way and " 1000" not in way else 1000
    formatter = StoredFormatter()
    started = _cpu_s(server_pid)
    if way.startswith("zstd data"):
        import msgspec

        from lrs.payload_codec import store_payloads

        stored = store_payloads([r.payload for r in records])
        records = [msgspec.structs.replace(r, payload=data) for r, data in zip(records, stored)]
    if way.startswith(("relay", "uncompressed", "window 10s", "zstd data")):
        for i in range(0, len(records), size):
            chunk = records[i:i + size]
            result = await bus.publish_batch(EventBatch(chunk, stored_texts_of(chunk), 1 << 20))
            assert result.stored == len(chunk), result
    elif way.startswith("each acked"):
        for i in range(0, len(records), size):
            chunk = records[i:i + size]
            result = await bus._publish_each_acked(EventBatch(chunk, stored_texts_of(chunk), 1 << 20)[:])
            assert result.stored == len(chunk), result
    else:
        assert bus._nc is not None
        send = bus._nc._send_command
        for i in range(0, len(records), size):
            await send(b"".join(_frames_without(records[i:i + size], formatter, way.startswith("msg-id"))))
            await bus._nc.flush()
    for _ in range(600):  # plain publishes: taken in when the stream's last sequence is the last message's
        info = await bus._jetstream().stream_info(config.name)
        if info.state.last_seq >= len(records):
            break
        await asyncio.sleep(0.02)
    assert info.state.last_seq == len(records), (way, info.state.last_seq)
    kept = 0 if way.endswith("no consumer") else len(records)
    assert info.state.messages == kept, (way, info.state.messages)
    used = _cpu_s(server_pid) - started
    await bus.close()
    return used / len(records) * 1e6


WAYS = ["relay 100", "relay 1000", "each acked 100", "msg-id only 1000", "no headers 1000", "uncompressed 1000",
        "relay 1000, no consumer", "msg-id only 1000, no consumer", "no headers 1000, no consumer",
        "window 10s 1000, no consumer", "zstd data 1000, no consumer"]


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main_async(args: argparse.Namespace) -> dict:
    from group_insert_encoding import _plans

    from lrs.runtime.nats import find_nats_server
    from lrs.runtime._process import free_port

    records = [new.event for plan in _plans(max(1, args.events // 100), 100) for new in plan.new]
    port = free_port()
    store = Path(tempfile.mkdtemp(prefix="nats-publish-cost-", dir=args.store_dir))
    server = subprocess.Popen([str(find_nats_server()), "-js", "-sd", str(store), "-a", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"nats://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                import nats

                nc = await nats.connect(url, connect_timeout=0.2, max_reconnect_attempts=0)
                await nc.close()
                break
            except Exception:  # noqa: BLE001 - not up yet
                await asyncio.sleep(0.1)
        ways = [w.strip() for w in args.ways.split(";")] if args.ways else WAYS
        unknown = [w for w in ways if w not in WAYS]
        if unknown:
            raise SystemExit(f"unknown ways {unknown}; known: {WAYS}")
        figures: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.rounds):
            for way in ways:
                figures[way].append(await _run_way(url, way, records, server.pid))
                print(f"{way:>18}: {figures[way][-1]:6.2f} µs of nats-server CPU per event", flush=True)
        peak_rss = _peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
        subprocess.run(["rm", "-rf", str(store)], check=False)
    return {
        "benchmark": "nats-publish-cost",
        "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "events_per_way": len(records),
        "rounds": args.rounds,
        "load_average": os.getloadavg(),
        "gogc": os.environ.get("GOGC", "default (100)"),
        "nats_server_peak_rss_mib": round(peak_rss, 1),
        "nats_server_cpu_us_per_event_median": {w: round(statistics.median(v), 2) for w, v in figures.items()},
        "nats_server_cpu_us_per_event": {w: [round(x, 2) for x in v] for w, v in figures.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000, help="events published each way (default 20,000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds; the median is kept (default 3)")
    parser.add_argument("--store-dir", default=None, help="where the JetStream store goes (default: the temp dir)")
    parser.add_argument("--ways", help="the ways to run, separated by ';' (default: all)")
    parser.add_argument("--label", default="", help="part of the result file's name (a branch name)")
    parser.add_argument("--output", help="result file (default: bench/results/nats-publish-cost-<time>.json)")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    record = asyncio.run(main_async(args))
    print(json.dumps(record["nats_server_cpu_us_per_event_median"], indent=1))
    if not args.no_save:
        out = Path(args.output or HERE / "results" / f"nats-publish-cost-{args.label + '-' if args.label else ''}{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json")
        out.write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
