#!/bin/bash
# What sealing personal data costs, by who the statements name: clear and
# sealed services (two builds) alternated, each started fresh by
# bench/ingest.py, batch 100 (16 clients) and batch 1 (32 clients).
#
#   bench/seal_population_ab.sh BEFORE_CHECKOUT ROUNDS DURATION [MODES] [NAME]
#
# Modes (default "worst fresh200k steady200k"): "worst" (a new learner
# name in every statement), "fresh200k" (200,000 learners named alike, a
# fresh store: early statements are first sights), "steady200k" (the same
# learners, each named twice before the runs: each of two workers has then
# seen about 3/4 of them), "steady50k" (50,000 learners named four times
# before: each worker has seen about 15/16 of them).
# Results: bench/results/ingest-<NAME>-<stamp>-<mode>-<variant>-r<round>.json
# (NAME: default seal-cost; a branch's name keeps its results apart).
set -eu
BEFORE=${1:?before checkout}; ROUNDS=${2:-2}; DURATION=${3:-15}; MODES=${4:-worst fresh200k steady200k}; NAME=${5:-seal-cost}
HERE=$(cd "$(dirname "$0")/.." && pwd)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
declare -A MODE_ARGS=([worst]="" [fresh200k]="--learners 200000" [steady200k]="--learners 200000 --warm-passes 2"
                      [steady50k]="--learners 50000 --warm-passes 4")
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then order="before-sealed after-clear after-sealed"; else order="after-sealed after-clear before-sealed"; fi
  for mode in $MODES; do
    for variant in $order; do
      side=${variant%-*}; kind=${variant#*-}
      tree=$HERE; [ "$side" = before ] && tree=$BEFORE
      seal=true; [ "$kind" = clear ] && seal=false
      echo "== round $round $mode $variant ($(uptime | sed 's/.*load/load/'))"
      LRS_SEAL_PERSONAL_DATA=$seal LRS_HTTP_WORKERS=2 LRS_PROJECTIONS_ENABLED=false \
        "$HERE/.venv/bin/python" "$HERE/bench/ingest.py" --start-service --service-tree "$tree" \
        --batch-sizes 100,1 --concurrency 16,32 --duration "$DURATION" ${MODE_ARGS[$mode]} \
        --note "$NAME A/B: $mode $variant round $round" \
        --output "$HERE/bench/results/ingest-$NAME-$STAMP-$mode-$variant-r$round.json" 2>&1 | grep -v '^{' || true
    done
  done
done
