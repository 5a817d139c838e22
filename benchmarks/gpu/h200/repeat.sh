#!/usr/bin/env bash
# On the GPU machine with serve.sh's server up: repeats of one count-bounded gate level (no
# --seconds: the gate measures four waves after a warm-up of ⅛ of the level's requests), as
# many as fit before BUDGET_S seconds of this call have passed (default 420, for a 600-s call),
# then one archive of everything small enough to come back: $OUT/repeats-LABEL.tgz.
#   bash benchmarks/gpu/h200/repeat.sh gpu-bundle/run/rag-optimized-rag-only.json opt 86 3
# A level at prod's shape takes ≈ 3 min at 86 streams (1,032 requests), ≈ 4 min at stock's 74.
set -uo pipefail
plan=${1:?plan json}; label=${2:?label}; concurrency=${3:?streams}; repeats=${4:-3}
budget=${BUDGET_S:-420}; res=/tmp/res
mkdir -p "$res"
for r in $(seq 1 "$repeats"); do
  if [ "$SECONDS" -gt "$budget" ]; then echo "stopped before repeat $r: ${SECONDS} s used"; break; fi
  OUT=$res bash "$(dirname "$0")/gate.sh" "$plan" "$label-c$concurrency-r$r" \
    --skip-capacity-search --concurrency "$concurrency" > "$res/$label-c$concurrency-r$r.log" 2>&1
  tail -2 "$res/$label-c$concurrency-r$r.log"
done
# Raw GuideLLM reports run to tens of MB: the gate's own trimmed copies and reports come back.
(cd "$res" && find . -type f -size -2M | tar czf "${OUT:-/tmp/out}/repeats-$label.tgz" -T -)
