#!/usr/bin/env bash
# On the GPU machine with the server of serve.sh up: the product's gate (GuideLLM 0.8.1) with
# the H200 prod plan's traffic, count-bounded levels. Args: concurrency levels.
set -uo pipefail
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1
py=$(python3 -c 'import sys; print(sys.executable)')
printf '#!/bin/sh\nexec %s -m guidellm "$@"\n' "$py" > "$(dirname "$py")/guidellm"; chmod +x "$(dirname "$py")/guidellm"
out=${OUT:-/tmp/out}/gate
python3 -m workloads.benchmark --plan gpu-bundle/run/plan-h200.json --target http://127.0.0.1:8000 \
  --tokenizer gpu-bundle/llama8b-bpe --out "$out" --skip-capacity-search --min-requests 40 \
  --concurrency "$@"
echo "gate exit $?"
cp /tmp/server.log "${OUT:-/tmp/out}/server.log"; nvidia-smi --query-gpu=name,memory.total --format=csv
