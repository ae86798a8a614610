#!/bin/bash
# Sealed and clear, a checkout against this one, alternated (docs/privacy.md
# "Refused first-sight keys (branch seal-b100)"): the whole service, 2 HTTP
# workers, projections off, 50,000 learners each named four times first,
# batch 100 (16 clients) then batch 1 (32), 15 s each.  Each run's result
# (CPU µs per statement by process, and the workers' refused keys where the
# build counts them) goes to bench/results/ingest-NAME-STAMP-rR-SIDE-MODE.json;
# then a table of sealed/clear per side and round.
#
#   bench/seal_refusals_ab.sh <start checkout> [ROUNDS] [NAME] [DATA_DIR]
set -euo pipefail
start=${1:?a checkout with its own .venv}; rounds=${2:-2}; name=${3:-seal-b100}
data=${4:-${TMPDIR:-/tmp}/seal-refusals-ab}
cd "$(dirname "$0")/.."
stamp=$(date -u +%Y%m%dT%H%MZ)
run() { # side mode round
  local side=$1 mode=$2 r=$3 tree=() dd="$data/$1-$2-$3"
  [ "$side" = start ] && tree=(--service-tree "$start")
  rm -rf "$dd"; mkdir -p "$dd"
  local seal=true; [ "$mode" = clear ] && seal=false
  echo "== $side $mode round $r $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
  LRS_HTTP_WORKERS=2 LRS_PROJECTIONS_ENABLED=false LRS_SEAL_PERSONAL_DATA=$seal \
    .venv/bin/python bench/ingest.py --start-service "${tree[@]}" --batch-sizes 100,1 --concurrency 16,32 \
    --duration 15 --learners 50000 --warm-passes 4 --data-dir "$dd" --note "$name A/B round $r: $side $mode" \
    --output "bench/results/ingest-$name-$stamp-r$r-$side-$mode.json" | grep -E "batch=|warm-up|wrote"
  rm -rf "$dd"
}
for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="start:sealed $name:sealed start:clear $name:clear"
  else order="$name:sealed start:sealed $name:clear start:clear"; fi
  for pair in $order; do run "${pair%%:*}" "${pair##*:}" "$r"; done
done
.venv/bin/python - "$name" "$stamp" <<'PY'
import json, sys
from pathlib import Path
name, stamp = sys.argv[1:]
cells = {}
for path in sorted(Path("bench/results").glob(f"ingest-{name}-{stamp}-r*-*.json")):
    r, rest = path.stem.split(f"{stamp}-r", 1)[1].split("-", 1)  # R-SIDE-MODE
    side, mode = rest.rsplit("-", 1)
    for run in json.loads(path.read_text())["runs"]:
        cpu = run["service_cpu_us_per_statement"]
        cells[(run["batch_size"], side, r, mode)] = (cpu["all"], cpu["http workers"], run["statements_per_s"],
                                                     run.get("keys_refused"), run["requests"], run["load_average_after"][0])
for (batch, side, r, mode), (all_, workers, rate, refused, requests, load) in sorted(cells.items()):
    clear = cells.get((batch, side, r, "clear"))
    ratio = f"  sealed/clear {all_ / clear[0]:.2f} (workers {workers / clear[1]:.2f})" if mode == "sealed" and clear else ""
    print(f"batch {batch:>3} {side:>10} r{r} {mode:>6}: all {all_:7.1f} µs, workers {workers:6.1f}, {rate:8,.0f}/s, "
          f"refused {refused if refused is None else int(sum(refused.values()))} of {requests}, load {load}{ratio}")
PY
