#!/usr/bin/env bash
# On the GPU machine after assemble.sh: start vLLM (setsid, survives this call while the machine
# is held) with the H200 prod plan's arguments, FP8 applied to dummy weights, the stack's plugin.
set -uo pipefail
export PYTHONPATH=/tmp/site VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0
python3 -m workloads.vllm_plugin /tmp/leanrag-vllm-plugins >/dev/null || exit 1
export PYTHONPATH=/tmp/site:/tmp/leanrag-vllm-plugins LEANRAG_DETOKENIZER_PRIME_TOKENS=32
t0=$(date +%s)
setsid python3 -m vllm.entrypoints.openai.api_server --model gpu-bundle/llama8b-bpe --served-model-name m \
  --load-format dummy --quantization fp8 --host 127.0.0.1 --port 8000 \
  --tensor-parallel-size 1 --max-model-len 8192 --max-num-seqs 423 --max-num-batched-tokens 2048 \
  --kv-cache-dtype fp8 --gpu-memory-utilization 0.92 --enable-prefix-caching --enable-chunked-prefill \
  > /tmp/server.log 2>&1 < /dev/null &
for i in $(seq 1 200); do curl -sf 127.0.0.1:8000/health >/dev/null && break; sleep 2; done
curl -sf 127.0.0.1:8000/health >/dev/null || { echo "server failed"; tail -30 /tmp/server.log; exit 1; }
echo "up in $(( $(date +%s) - t0 )) s; $(grep -oE 'KV cache size: [0-9,]+ tokens' /tmp/server.log | tail -1)"
