#!/usr/bin/env bash
# On the lent GPU machine (after shared/gpu/assemble.sh): start vLLM 0.25.1 on the
# Llama-3.1-8B architecture (random weights, --load-format dummy) with each KV-cache dtype and
# gpu-memory-utilization, read what vLLM reports at start-up, stop it. No traffic is sent.
#   usage: kv_capacity.sh MODEL_DIR   → $OUT/kv_capacity.json (+ one server log per config)
# Compared with the sizing model's prediction by benchmarks/gpu/compare_kv_capacity.py.
set -uo pipefail
model=$1
export PYTHONPATH=/tmp/site VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0
out=${OUT:-/tmp/out}; mkdir -p "$out"
echo "[" > "$out/kv_capacity.json"; first=1
for kv in auto fp8; do
  for util in 0.85 0.92; do
    label="kv-$kv-util-$util"; log="$out/server-$label.log"
    setsid python3 -m vllm.entrypoints.openai.api_server --model "$model" --load-format dummy \
      --host 127.0.0.1 --port 8000 --max-model-len 8192 --kv-cache-dtype "$kv" \
      --gpu-memory-utilization "$util" > "$log" 2>&1 &
    pid=$!
    # vLLM logs the KV-cache size before CUDA-graph capture: stop as soon as it appears.
    for i in $(seq 1 240); do
      grep -q "Maximum concurrency" "$log" && break
      kill -0 $pid 2>/dev/null || break
      sleep 1
    done
    kill -9 -- -$pid 2>/dev/null; wait $pid 2>/dev/null
    pkill -9 -f vllm.entrypoints 2>/dev/null; sleep 5
    tokens=$(grep -oE "KV cache size: [0-9,]+ tokens" "$log" | tail -1 | grep -oE "[0-9,]+" | tr -d ,)
    concurrency=$(grep -oE "Maximum concurrency for [0-9,]+ tokens per request: [0-9.]+" "$log" | tail -1 | grep -oE "[0-9.]+$")
    weights=$(grep -oE "Model loading took [0-9.]+ GiB" "$log" | tail -1 | grep -oE "[0-9.]+")
    available=$(grep -oE "Available KV cache memory: [0-9.]+ GiB" "$log" | tail -1 | grep -oE "[0-9.]+")
    [ $first = 1 ] || echo "," >> "$out/kv_capacity.json"; first=0
    printf '{"kv_cache_dtype": "%s", "gpu_memory_utilization": %s, "kv_cache_tokens": %s, "max_concurrency_at_8192": %s, "weights_gib": %s, "available_kv_gib": %s}\n' \
      "$kv" "$util" "${tokens:-null}" "${concurrency:-null}" "${weights:-null}" "${available:-null}" >> "$out/kv_capacity.json"
    echo "$label: tokens=${tokens:-?} concurrency=${concurrency:-?} weights=${weights:-?}GiB kv=${available:-?}GiB"
  done
done
echo "]" >> "$out/kv_capacity.json"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt"
python3 -c "import sys; sys.path.insert(0, '/tmp/site'); import vllm; print('vllm', vllm.__version__)" | tee -a "$out/device.txt"
