#!/usr/bin/env bash
# The GPU proof (issue #9), on the lent GPU machine after shared/gpu/assemble.sh, with the
# Llama-3.1-8B architecture (random weights, --load-format dummy: real speed and memory).
#   proof.sh before-after MODEL_DIR [stock] [optimized]   (default: both)
#   proof.sh hol MODEL_DIR STEP [STEP ...]   STEP: a max-num-batched-tokens, or one-step
#   proof.sh hol-end MODEL_DIR [STEP]     the stall at the end of a long prefill, located
#   proof.sh hol-profile MODEL_DIR STEP PY_SPY   the same, with py-spy on every vLLM process
#   proof.sh shared MODEL_DIR [cache-on] [cache-off]      (default: both)
#   PLUGIN=1 proof.sh ...   the same with the stack's vLLM plugin loaded
# → JSON + server logs in $OUT. OPTIMIZED is the prod stack's plan (`leanrag plan --stack prod`;
# tests/unit/test_gpu_proof.py keeps it in step): FP8 weights (`--quantization fp8` applies to
# the random weights what the compressed checkpoint carries), FP8 KV, util 0.92, max-num-seqs
# 127 (the plan before 2026-12-02: 240), 2048-token steps, prefix caching, chunked prefill; stock = vLLM's defaults on bf16.
# The head-of-line steps come from `python -m benchmarks.gpu.long_document_plan` (prod re-planned
# for 100k-token documents on one GPU: 256-token steps at prod's 50 ms ITL target, 512 at 100).
# Load: vLLM's own bench client for before/after (GuideLLM's wheels are not carried to the
# device: the transfer budget), stream_probe.py (aiohttp, next to this script) for the others.
set -uo pipefail
what=$1 model=$2; shift 2
here=$(cd "$(dirname "$0")" && pwd)
export PYTHONPATH=/tmp/site VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0
out=${OUT:-/tmp/out}; mkdir -p "$out"
OPTIMIZED=(--quantization fp8 --kv-cache-dtype fp8 --gpu-memory-utilization 0.92 --max-num-seqs 108
           --max-num-batched-tokens 2048 --enable-prefix-caching --enable-chunked-prefill)
LONG_DOC_LEN=131072  # the long-document plan's max-model-len
# hol with another tokenizer: LABEL_SUFFIX=-bpe PROBE_ARGS="--prompt-id-limit 100256" and the
# model folder from benchmarks/gpu/make_bpe_tokenizer.py
LABEL_SUFFIX=${LABEL_SUFFIX:-}
# PLUGIN=1: serve with the stack's vLLM plugin (workloads/vllm_plugin: the detokenizer primed
# with the prompt's tail), loaded from the folder the stack ships, as the serving pods do.
if [ "${PLUGIN:-0}" = 1 ]; then
  (cd "$here/../.." && python3 -m workloads.vllm_plugin /tmp/leanrag-vllm-plugins) || exit 1
  export PYTHONPATH=$PYTHONPATH:/tmp/leanrag-vllm-plugins
fi

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
  grep -m1 -oE 'leanrag_vllm_plugin: .*' "$out/server-$label.log"; true
}
serve_long() {  # label, step budget: the optimized profile with the long-document context
  local args=("${OPTIMIZED[@]}") i
  for i in "${!args[@]}"; do [ "${args[$i]}" = --max-num-batched-tokens ] && args[i+1]=$2; done
  serve "$1" --max-model-len $LONG_DOC_LEN "${args[@]}"
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
    for profile in "${@:-stock optimized}"; do for p in $profile; do
      if [ "$p" = stock ]; then serve stock --max-model-len 8192 || continue
      else serve optimized --max-model-len 8192 "${OPTIMIZED[@]}" || continue; fi
      for c in 32 64 128; do bench "$p$LABEL_SUFFIX" $c; done; stop
    done; done ;;
  hol)
    # One-step: a step budget as large as the context, so the whole document prefills in one
    # step (vLLM's V1 scheduler always chunks; the budget decides the size).
    for step in "$@"; do
      budget=$step label=chunked-$step
      [ "$step" = one-step ] && budget=$LONG_DOC_LEN label=one-step
      serve_long "$label" "$budget" || continue
      python3 "$here/stream_probe.py" hol --model-dir "$model" --label "$label$LABEL_SUFFIX" \
        --step-tokens "$budget" --out "$out/hol-$label$LABEL_SUFFIX.json" ${PROBE_ARGS:-}
      stop
    done ;;
  hol-end)
    # Where the one stall at the end of a document's prefill comes from: one server with STEP,
    # fresh documents (new seeds) asking for 1 and then 64 tokens. If the stall follows the
    # document's last token, it is the request finishing; if it stays at the first, prefill end.
    step=${1:-256}
    serve_long "end-$step" "$step" && {
      for run in "1 1" "64 2" "1 3"; do set -- $run
        python3 "$here/stream_probe.py" hol --model-dir "$model" --label "end-$step-out$1-seed$2$LABEL_SUFFIX" \
          --step-tokens "$step" --doc-output "$1" --seed "$2" \
          --out "$out/hol-end-$step-out$1-seed$2$LABEL_SUFFIX.json" ${PROBE_ARGS:-}
      done; stop; } ;;
  hol-profile)
    # hol at STEP with py-spy sampling every vLLM process (non-blocking) for the whole probe:
    # what vLLM's processes do during the stall at the document's first token.
    step=$1 pyspy=$2
    serve_long "profile-$step" "$step" && {
      "$pyspy" record --pid "$pid" --subprocesses --nonblocking --rate 250 --duration 22 \
        --format speedscope -o "$out/profile-$step.speedscope.json" > "$out/py-spy.log" 2>&1 &
      spy=$!; sleep 2
      python3 "$here/stream_probe.py" hol --model-dir "$model" --label "profile-$step" \
        --step-tokens "$step" --seed 4 --out "$out/hol-profile-$step.json"
      wait $spy; tail -3 "$out/py-spy.log"; gzip -f "$out/profile-$step.speedscope.json"; stop; } ;;
  shared)
    optimized_no_cache=("${OPTIMIZED[@]/--enable-prefix-caching/--no-enable-prefix-caching}")
    for label in "${@:-cache-on cache-off}"; do for l in $label; do
      if [ "$l" = cache-on ]; then serve cache-on --max-model-len 34000 "${OPTIMIZED[@]}" || continue
      else serve cache-off --max-model-len 34000 "${optimized_no_cache[@]}" || continue; fi
      python3 "$here/stream_probe.py" shared --model-dir "$model" --doc-tokens 32768 --rounds 1 \
        --label "$l$LABEL_SUFFIX" --out "$out/shared-$l$LABEL_SUFFIX.json" ${PROBE_ARGS:-}
      stop
    done; done ;;
  *) echo "usage: proof.sh before-after|hol|hol-end|hol-profile|shared MODEL_DIR [...]"; exit 2 ;;
esac
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$out/device.txt"
python3 -c "import vllm; print('vllm', vllm.__version__)" >> "$out/device.txt" 2>/dev/null
cat "$out/device.txt"
