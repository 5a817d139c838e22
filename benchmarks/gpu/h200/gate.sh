#!/usr/bin/env bash
# On the GPU machine with serve.sh's server up: the product's gate (GuideLLM 0.8.1) on one
# replica of a plan written by benchmarks/gpu/h200/plans.py. Args: PLAN LABEL [gate options],
# e.g.  bash benchmarks/gpu/h200/gate.sh gpu-bundle/run/rag-optimized.json rag-opt-86
# vLLM's own /metrics are read before and after (server-side queue, prefill and TTFT
# histograms: `python -m benchmarks.gpu.h200.server_metrics` splits TTFT with them; the gate
# itself reads the prefix-cache counters around each scenario, --metrics-url), and the
# server's periodic stats lines (running / waiting requests) are kept.
set -uo pipefail
plan=${1:?plan json}; label=${2:?label}; shift 2
for need in "$plan" gpu-bundle/llama8b-bpe/tokenizer.json; do
  [ -f "$need" ] || { echo "no $need here: carry its folder in this call"; exit 2; }
done
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1
py=$(python3 -c 'import sys; print(sys.executable)')
printf '#!/bin/sh\nexec %s -m guidellm "$@"\n' "$py" > "$(dirname "$py")/guidellm"; chmod +x "$(dirname "$py")/guidellm"
out=${OUT:-/tmp/out}/$label
mkdir -p "$out"
# The run describes itself (summary.py reads these): the plan and the server's arguments.
cp "$plan" "$out/plan.json"
state=${SERVER_STATE:-/tmp/server.args}
cp "$state" "$out/server.args" 2>/dev/null || echo "no $state: not from serve.sh"
cp "${state%.args}-config.log" "$out/server-config.log" 2>/dev/null
# A lever's run names itself — VARIANT="FlashInfer attention", or the `.variant` serve.sh filed
# beside the server's arguments — and the summary keeps it apart from its profile's own levels.
if [ -n "${VARIANT:-}" ]; then
  echo "$VARIANT" > "$out/variant"
elif [ -f "${state%.args}.variant" ]; then
  cp "${state%.args}.variant" "$out/variant"
fi
curl -sf 127.0.0.1:8000/metrics > "$out/metrics-before.txt"
from_line=$(wc -l < /tmp/server.log)
t0=$(date +%s)
python3 -m workloads.benchmark --plan "$plan" --target http://127.0.0.1:8000 \
  --tokenizer gpu-bundle/llama8b-bpe --out "$out" --one-replica \
  --metrics-url http://127.0.0.1:8000/metrics "$@"
echo "gate $label exit $? after $(( $(date +%s) - t0 )) s"
curl -sf 127.0.0.1:8000/metrics > "$out/metrics-after.txt" && rm -f "$out/metrics-after.partial"
tail -n +"$from_line" /tmp/server.log | grep -v '"POST \|"GET ' > "$out/server-stats.log"
rm -f "$out"/*.json.full 2>/dev/null
