"""Group a cProfile of ``lrs serve`` under the ingest bench into the pieces of the ingest path.

Take the profile with one process doing everything (HTTP, writer, relay)::

    LRS_HTTP_WORKERS=1 LRS_PROJECTIONS_ENABLED=false LRS_HTTP_PORT=8080 LRS_DATA_DIR=/tmp/prof-data \\
        LRS_BOOTSTRAP_CREDENTIAL=bk:bs python -m cProfile -o /tmp/ingest.prof -m lrs serve &
    python bench/ingest.py --url http://127.0.0.1:8080 --key bk --secret bs --batch-sizes 100 \\
        --concurrency 16 --duration 15 --no-save
    kill -TERM %1; wait

then ``python bench/profile_attribution.py /tmp/ingest.prof``.  Events are
counted as the calls of ``lrs.relay.event_message``.  Middlewares are given
their own time: cumulative minus the largest callee (the handler they wrap).
"""

from __future__ import annotations

import json
import pstats
import sys


def attribute(path: str) -> dict:
    stats = pstats.Stats(path)
    stats.calc_callees()
    table, callees = stats.stats, stats.all_callees  # type: ignore[attr-defined]

    def find(file_part: str, name: str) -> list:
        return [f for f in table if file_part in f[0] and f[2] == name]

    def cumulative(functions: list) -> float:
        return sum(table[f][3] for f in functions)

    def own(functions: list) -> float:
        return sum(table[f][3] - max((v[3] for v in callees.get(f, {}).values()), default=0.0) for f in functions)

    events = sum(table[f][1] for f in find("lrs/relay.py", "event_message")) or 1
    rows = {
        "load shedding": own(find("lrs/http/shedding.py", "load_shedding")),
        "CORS preflight": own(find("lrs/http/cors.py", "cors_preflight")),
        "unstorable-text guard": own(find("lrs/http/text_guard.py", "refuse_unstorable_text")),
        "rate limit (shared)": own(find("lrs/http/ratelimit.py", "rate_limit_middleware")),
        "authentication": own(find("lrs/http/", "authentication")),
        "relay task, whole": cumulative(find("lrs/relay.py", "_lead")),
        "relay: event_message": cumulative(find("lrs/relay.py", "event_message")),
        "anchor writer: observe (hashing the relay's batches)": cumulative(find("lrs/anchor_writer.py", "observe")),
        "anchor writer: anchor_now": cumulative(find("lrs/anchor_writer.py", "anchor_now")),
        "Activity Definitions at write time": cumulative(find("lrs/store/group_columns.py", "group_definition_updates"))
        + cumulative(find("lrs/store/activities.py", "write_definitions")),
        "msgspec decode (IRI patterns included)": cumulative(
            [f for f in table if f[2].startswith("<method 'decode' of 'msgspec")]),
        "writer group commit, whole": cumulative(find("lrs/store/writer.py", "_commit_group")),
    }
    return {"events": events, "rows": [{"piece": k, "cpu_s": round(v, 3), "us_per_event": round(v / events * 1e6, 1)}
                                       for k, v in rows.items()]}


if __name__ == "__main__":
    print(json.dumps(attribute(sys.argv[1]), indent=1))
