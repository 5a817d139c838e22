#!/usr/bin/env bash
# On the GPU machine with serve.sh's server up: REPEATS count-bounded repeats of one gate level,
# as many as fit before DEADLINE (levels.sh); the same command in the next call runs the rest.
# Everything small enough to come back: $OUT/repeats-LABEL.tgz.
#   DEADLINE=$(( $(date +%s) + 560 )) LEVEL_S=200 \
#     bash benchmarks/gpu/h200/repeat.sh gpu-bundle/run/rag-optimized-rag-only.json opt 86 3
# A level at prod's shape takes ≈ 3 min at 86 streams (1,032 requests), ≈ 4.5 min at 74 stock.
set -uo pipefail
PLAN=${1:?plan json}; label=${2:?label}; streams=${3:?streams}; repeats=${4:-3}
source "$(dirname "$0")/levels.sh"
for r in $(seq 1 "$repeats"); do
  run_level "$label-c$streams-r$r" "$streams" "repeats-$label" || break
done
