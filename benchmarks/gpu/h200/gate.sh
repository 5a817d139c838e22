#!/usr/bin/env bash
# On the GPU machine with serve.sh's server up: the product's gate (GuideLLM 0.8.1) on one
# replica of a plan written by benchmarks/gpu/h200/plans.py. Args: PLAN LABEL [gate options],
# e.g.  bash benchmarks/gpu/h200/gate.sh gpu-bundle/run/rag-optimized.json rag-opt-86
set -uo pipefail
plan=${1:?plan json}; label=${2:?label}; shift 2
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1
py=$(python3 -c 'import sys; print(sys.executable)')
printf '#!/bin/sh\nexec %s -m guidellm "$@"\n' "$py" > "$(dirname "$py")/guidellm"; chmod +x "$(dirname "$py")/guidellm"
out=${OUT:-/tmp/out}/$label
t0=$(date +%s)
python3 -m workloads.benchmark --plan "$plan" --target http://127.0.0.1:8000 \
  --tokenizer gpu-bundle/llama8b-bpe --out "$out" --one-replica "$@"
echo "gate $label exit $? after $(( $(date +%s) - t0 )) s"
rm -f "$out"/*.json.full 2>/dev/null
cp /tmp/server.log "${OUT:-/tmp/out}/server-$label.log"
