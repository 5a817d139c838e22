#!/usr/bin/env bash
# The GPU proof (issue #9), on the lent GPU machine after shared/gpu/assemble.sh, with the
# Llama-3.1-8B architecture (random weights, --load-format dummy: real speed and memory).
#   usage: proof.sh before-after|hol|shared MODEL_DIR   → JSON + server logs in $OUT
# Arguments are the prod stack's plan (`leanrag plan --stack prod`): optimized = FP8 weights,
# FP8 KV, util 0.92, max-num-seqs 240, max-num-batched-tokens 2560, prefix caching, chunked
# prefill; stock = vLLM's defaults on bf16 weights. Load: vLLM's own bench client for
# before/after (GuideLLM's wheels are not carried to the device: the transfer budget), and
# stream_probe.py (aiohttp, next to this script) for the head-of-line and shared-document runs.
set -uo pipefail
what=$1 model=$2
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=/tmp/site VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0
out=${OUT:-/tmp/out}; mkdir -p "$out"
OPTIMIZED=(--quantization fp8 --kv-cache-dtype fp8 --gpu-memory-utilization 0.92 --max-num-seqs 240
           --max-num-batched-tokens 2560 --enable-prefix-caching --enable-chunked-prefill)

serve() {  # label, vllm args...
  local label=$1; shift
  local t0; t0=$(date +%s)
  setsid python3 -m vllm.entrypoints.openai.api_server --model "$model" --served-model-name m \
    --load-format dummy --host 127.0.0.1 --port 8000 "$@" > "$out/server-$label.log" 2>&1 &
  pid=$!
  for i in $(seq 1 200); do
    curl -sf 127.0.0.1:8000/health >/dev/null && break
    kill -0 $pid 2>/dev/null || break; sleep 2
  done
  if ! curl -sf 127.0.0.1:8000/health >/dev/null; then
    echo "$label: server failed"; tail -25 "$out/server-$label.log"; stop; return 1
  fi
  echo "$label: up in $(( $(date +%s) - t0 )) s; $(grep -oE 'KV cache size: [0-9,]+ tokens' "$out/server-$label.log" | tail -1)"
}
stop() { kill -- -$pid 2>/dev/null; sleep 3; kill -9 -- -$pid 2>/dev/null; wait $pid 2>/dev/null; pkill -9 -f vllm.entrypoints; sleep 3; true; }

bench() {  # label, concurrency: the RAG shape, 2048 in / 256 out, goodput at the prod SLOs
  local label=$1 c=$2 n=$(( $2 * 4 < 100 ? 100 : $2 * 4 ))
  python3 -m vllm.entrypoints.cli.main bench serve --backend vllm --base-url http://127.0.0.1:8000 \
    --model m --tokenizer "$model" --dataset-name random --random-input-len 2048 \
    --random-output-len 256 --ignore-eos --num-prompts $n --max-concurrency "$c" \
    --percentile-metrics ttft,tpot,itl,e2el --metric-percentiles 50,95,99 \
    --goodput ttft:2000 tpot:50 --save-result --result-dir "$out" \
    --result-filename "before-after-$label-c$c.json" > "$out/bench-$label-c$c.log" 2>&1
  python3 -c "
import json,sys; r=json.load(open(sys.argv[1]))
print(f\"$label c=$c: {r['request_throughput']:.2f} req/s, goodput {r.get('request_goodput', float('nan')):.2f} req/s, TTFT p95 {r['p95_ttft_ms']:.0f} ms, ITL p95 {r['p95_itl_ms']:.1f} ms\")" "$out/before-after-$label-c$c.json"
}

case $what in
  before-after)
    serve stock --max-model-len 8192 && { for c in 32 64 128; do bench stock $c; done; stop; }
    serve optimized --max-model-len 8192 "${OPTIMIZED[@]}" && { for c in 32 64 128; do bench optimized $c; done; stop; } ;;
  hol)
    # Plan: 2560-token steps. Versus: a 110000-token step budget, so the whole document
    # prefills in one step (vLLM's V1 scheduler always chunks; the budget decides the size).
    serve chunked --max-model-len 110000 "${OPTIMIZED[@]}" && {
      python3 "$here/stream_probe.py" hol --model-dir "$model" --label chunked --out "$out/hol-chunked.json"; stop; }
    serve one-step --max-model-len 110000 --quantization fp8 --kv-cache-dtype fp8 \
      --gpu-memory-utilization 0.92 --max-num-seqs 240 --max-num-batched-tokens 110000 \
      --enable-prefix-caching && {
      python3 "$here/stream_probe.py" hol --model-dir "$model" --label one-step --out "$out/hol-one-step.json"; stop; } ;;
  shared)
    optimized_no_cache=("${OPTIMIZED[@]/--enable-prefix-caching/--no-enable-prefix-caching}")
    serve cache-on --max-model-len 34000 "${OPTIMIZED[@]}" && {
      python3 "$here/stream_probe.py" shared --model-dir "$model" --doc-tokens 32768 --rounds 1 --label cache-on --out "$out/shared-cache-on.json"; stop; }
    serve cache-off --max-model-len 34000 "${optimized_no_cache[@]}" && {
      python3 "$here/stream_probe.py" shared --model-dir "$model" --doc-tokens 32768 --rounds 1 --label cache-off --out "$out/shared-cache-off.json"; stop; } ;;
esac
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/device.txt"
python3 -c "import vllm; print('vllm', vllm.__version__)" >> "$out/device.txt" 2>/dev/null
cat "$out/device.txt"
