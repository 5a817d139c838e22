#!/usr/bin/env bash
# On the GPU machine with serve.sh's server up: bracket the capacity at the SLO with count-bounded
# gate levels. Runs level C; then UP if C met both latency targets in a steady state, DOWN if it
# missed one. Levels already in /tmp/res are skipped, so the same command given in the next call
# goes on where the last one stopped (the machine keeps /tmp while it is held). A level starts
# only if LEVEL_S more seconds fit before DEADLINE (epoch seconds; default: now + 540). After each
# level everything small enough to come back is archived to $OUT/bracket-LABEL.tgz.
#   DEADLINE=$(( $(date +%s) + 550 )) LEVEL_S=270 \
#     bash benchmarks/gpu/h200/bracket.sh gpu-bundle/run/rag-optimized-rag-only.json opt 127 140 120
set -uo pipefail
plan=${1:?plan json}; label=${2:?label}; start=${3:?streams}; up=${4:?streams if met}
down=${5:?streams if missed}
deadline=${DEADLINE:-$(( $(date +%s) + 540 ))}; level_s=${LEVEL_S:-270}; res=/tmp/res
mkdir -p "$res"

# met | missed | unknown (refused, or no verdict) for one level's gate.json
verdict() {
  python3 - "$1" <<'EOF'
import json, sys
try:
    report = json.load(open(sys.argv[1]))
except OSError:
    print("unknown"); sys.exit()
checks = {c["name"]: c["passed"] for c in report.get("checks", [])}
latency = [checks.get(n) for n in ("ttft_p95_ms", "itl_p95_ms", "error_rate")]
if report.get("refusals") or None in latency:
    print("unknown")
else:
    print("met" if all(latency) else "missed")
EOF
}

run_level() {
  local name=$label-c$1
  if [ -f "$res/$name/gate.json" ]; then echo "$name: done before ($(verdict "$res/$name/gate.json"))"; return; fi
  if [ $(( $(date +%s) + level_s )) -gt "$deadline" ]; then echo "$name: does not fit this call"; exit 0; fi
  OUT=$res bash "$(dirname "$0")/gate.sh" "$plan" "$name" --skip-capacity-search \
    --concurrency "$1" > "$res/$name.log" 2>&1
  tail -2 "$res/$name.log"
  echo "$name: $(verdict "$res/$name/gate.json")"
  # Raw GuideLLM reports run to tens of MB: the gate's own trimmed copies and reports come back.
  (cd "$res" && find . -type f -size -2M | tar czf "${OUT:-/tmp/out}/bracket-$label.tgz" -T -)
}

run_level "$start"
case $(verdict "$res/$label-c$start/gate.json") in
  met) run_level "$up" ;;
  missed) run_level "$down" ;;
  *) echo "$label-c$start has no verdict: not bracketing" ;;
esac
