"""Where an HTTP worker's samples go, piece by piece of the request path.

Reads a ``py-spy record --native -f raw`` profile of one HTTP worker (or of
``bench/http_request_path.py``'s server) and puts each sample in the
innermost piece of the request path it was in: the handler's parsing,
preparation and hand-off, the writer task's pieces, each middleware's own
work, aiohttp's reading and response.  Samples idle in ``epoll_pwait`` and
in idle pool threads are left out.  Samples inside a ``write`` system call
are shown apart: on a loaded two-core machine the process that ``write``
wakes (the PostgreSQL backend, the load generator) often takes the core
there, so py-spy counts the wait for the core as time in ``write`` (``perf``
of the same worker gave the kernel 9 % of its CPU where py-spy gave ``write``
28 % of its samples, docs/scaling.md).  With ``--us`` the worker's CPU a
statement (``bench/ingest.py``'s ``http workers`` figure) is spread over the
pieces in proportion.

    uvx py-spy record -p <worker pid> -d 10 -r 200 -f raw --native -o worker.txt
    python bench/worker_pieces.py worker.txt --us 319
"""

from __future__ import annotations

import argparse
import collections
from pathlib import Path

# (a substring of a frame, the piece): the innermost frame that matches names the sample's piece.
PIECES = [
    ("StatementWriter.append", "handler: hand-off to the writer (stored form, queue)"),
    ("WriterQueue.append", "handler: hand-off to the writer (stored form, queue)"),  # its name where co_qualname is read
    ("store_payloads (lrs/payload_codec", "writer: zstd of the payloads"),
    ("statement_form", "handler: prepare + stored form"), ("prepare_statements", "handler: prepare + stored form"),
    ("payload_parts", "handler: prepare + stored form"),
    ("parse_statements", "handler: parse + validate"), ("_decode (lrs/xapi", "handler: parse + validate"),
    ("check_shape", "handler: parse + validate"), ("_json (lrs/http/statements", "handler: response body"),
    ("_read_json_body", "handler: read body"), ("_received_statements", "handler: read body"),
    ("post_statements", "handler: own"), ("_append (lrs/http/statements", "handler: own"),
    ("group_columns", "writer: group columns"), ("key_literal", "writer: group columns"),
    ("plan_group", "writer: plan + hash chain"),
    ("write_definitions", "writer: definitions"), ("group_definition_updates", "writer: definitions"),
    ("definition_slots", "writer: definitions"),
    ("group_transaction", "writer: BEGIN/COMMIT (asyncpg)"),
    ("_write_on", "writer: head lock call, INSERT (asyncpg), the rest"),
    ("_commit_group", "writer: answering the futures, metrics"),
    ("StatementWriter._run", "writer: gathering, taking the group"),
    ("write_eof", "aiohttp: response"), ("finish_response", "aiohttp: response"),
    ("StreamResponse.prepare", "aiohttp: response"), ("Response._start", "aiohttp: response"),
    ("LineWriter", "request log line"), ("_whole_writes", "request log line"), ("log_request", "request log line"),
    ("authentication", "middleware: authentication"), ("load_shedding", "middleware: load shedding"),
    ("request_context", "middleware: request context (id, metrics, log fields)"),
    ("cors_preflight", "middleware: cors"), ("error_mapping", "middleware: error mapping"),
    ("alternate_syntax", "middleware: alternate syntax"), ("refuse_unstorable_text", "middleware: text guard"),
    ("body_size_limit", "middleware: body limit"), ("xapi_version", "middleware: version"),
    ("rate_limit", "middleware: rate limit"),
    ("LoopLag", "loop lag monitor"),
    ("data_received", "aiohttp: reading and parsing the request"),
    ("RequestHandler.start", "aiohttp: the connection's request loop"),
    ("_handle_request", "aiohttp: handle_request"), ("Application._handle", "aiohttp: routing"),
    ("_fix_request_current_app", "aiohttp: middleware wrapper"),
]
IDLE_LEAVES = ("epoll_pwait", "epoll_wait")
WRITE_LEAVES = ("write (libc", "__libc_write", "__write")


def attribute(lines: list[str]) -> tuple[collections.Counter, collections.Counter]:
    """(samples by piece outside ``write``, samples by piece inside it)."""
    busy: collections.Counter = collections.Counter()
    writing: collections.Counter = collections.Counter()
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        frames = stack.split(";")
        if frames[-1].startswith(IDLE_LEAVES) or any("concurrent/futures/thread.py" in f for f in frames):
            continue
        piece = "event loop, the rest"
        for frame in reversed(frames):
            found = next((name for part, name in PIECES if part in frame), None)
            if found is not None:
                piece = found
                break
        (writing if frames[-1].startswith(WRITE_LEAVES) else busy)[piece] += int(count)
    return busy, writing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy raw output (--native -f raw)")
    parser.add_argument("--us", type=float, help="the worker's CPU µs a statement, spread over the pieces")
    args = parser.parse_args()
    busy, writing = attribute(args.profile.read_text().splitlines())
    total = sum(busy.values())
    print(f"samples outside idle waits and write(): {total}; in write(): {sum(writing.values())}")
    for piece, samples in busy.most_common():
        spread = f"  {args.us * samples / total:6.1f} µs" if args.us else ""
        print(f"{100 * samples / total:5.1f} %{spread}  {piece}")
    print("in write(), by piece (time on the core or waiting for it):")
    for piece, samples in writing.most_common():
        print(f"  {samples:5d}  {piece}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
