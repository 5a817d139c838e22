#!/usr/bin/env bash
# On the GPU machine with serve.sh's server up: bracket the capacity at the SLO with count-bounded
# gate levels (levels.sh). Runs level START, then UP if it met both latency targets in a steady
# state, DOWN if it missed one; the same command in the next call goes on where this one
# stopped. Everything small enough to come back: $OUT/bracket-LABEL.tgz.
#   DEADLINE=$(( $(date +%s) + 550 )) LEVEL_S=290 \
#     bash benchmarks/gpu/h200/bracket.sh gpu-bundle/run/rag-optimized-rag-only.json opt 127 140 120
set -uo pipefail
PLAN=${1:?plan json}; label=${2:?label}; start=${3:?streams}; up=${4:?streams if met}
down=${5:?streams if missed}
source "$(dirname "$0")/levels.sh"
run_level "$label-c$start" "$start" "bracket-$label" || exit 0
case $(verdict "$res/$label-c$start/gate.json") in
  met) run_level "$label-c$up" "$up" "bracket-$label" || true ;;
  missed) run_level "$label-c$down" "$down" "bracket-$label" || true ;;
  *) echo "$label-c$start has no verdict: not bracketing" ;;
esac
