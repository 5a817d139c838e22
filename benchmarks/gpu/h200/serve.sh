#!/usr/bin/env bash
# On the GPU machine after assemble.sh: (re)start vLLM, setsid so it survives this call while
# the machine is held, with the arguments a plan wrote (benchmarks/gpu/h200/plans.py), e.g.
#   bash benchmarks/gpu/h200/serve.sh gpu-bundle/run/rag-optimized.args
# Dummy weights (--load-format dummy); the stack's vLLM plugin.
set -uo pipefail
args_file=${1:?args file}
# Carried folders not named in a call's `carry` are gone on the machine: say so before stopping a
# running server or waiting for one that cannot start.
[ -f "$args_file" ] || { echo "no $args_file here: carry gpu-bundle/run"; exit 1; }
model=$(grep -oE -- '--model [^ ]+' "$args_file" | cut -d' ' -f2)
[ -f "$model/config.json" ] || { echo "no model folder $model here: carry it"; exit 1; }
# (the bracket keeps pkill from matching a shell whose command line names the server)
pkill -f "vllm.entrypoints.openai.api_serve[r]" && sleep 5
export PYTHONPATH=/tmp/site VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1 VLLM_USE_FLASHINFER_SAMPLER=0
# FlashInfer attention is built on the machine at first use (flashinfer.sh says what is missing).
if grep -q -- '--attention-backend FLASHINFER' "$args_file"; then
  # shellcheck source=benchmarks/gpu/h200/flashinfer.sh
  source "$(dirname "$0")/flashinfer.sh" || exit 1
fi
python3 -m workloads.vllm_plugin /tmp/leanrag-vllm-plugins >/dev/null || exit 1
export PYTHONPATH=/tmp/site:/tmp/leanrag-vllm-plugins LEANRAG_DETOKENIZER_PRIME_TOKENS=32
t0=$(date +%s)
# shellcheck disable=SC2046
setsid python3 -m vllm.entrypoints.openai.api_server $(cat "$args_file") --load-format dummy \
  --host 127.0.0.1 --port 8000 > /tmp/server.log 2>&1 < /dev/null &
server=$!
for _ in $(seq 1 "${START_POLLS:-200}"); do  # 2 s each; a FlashInfer build may want more
  curl -sf 127.0.0.1:8000/health >/dev/null && break
  kill -0 "$server" 2>/dev/null || break  # it exited: no point waiting 400 s
  sleep 2
done
curl -sf 127.0.0.1:8000/health >/dev/null || { echo "server failed"; tail -30 /tmp/server.log; exit 1; }
state=${SERVER_STATE:-/tmp/server.args}
cp "$args_file" "$state"  # gate.sh files it beside each report
# A lever's server names itself (plans.py writes NAME.variant beside NAME.args); gate.sh files it.
if [ -f "${args_file%.args}.variant" ]; then
  cp "${args_file%.args}.variant" "${state%.args}.variant"
else
  rm -f "${state%.args}.variant"
fi
# What the engine chose at start (scheduler, attention backend, kernels, graphs, compilation,
# KV cache): gate.sh and profile.sh file it beside each run, so a run says what it measured.
grep -E 'non-default args|Asynchronous scheduling|[Aa]ttention backend|Using .*(backend|[Kk]ernel)|[Cc][Uu][Dd][Aa] ?[Gg]raph|[Cc]ompil|[Ff]usion|KV cache size|Maximum concurrency|Available KV cache' \
  /tmp/server.log | cut -c1-400 | head -60 > "${state%.args}-config.log"
echo "up in $(( $(date +%s) - t0 )) s with $(cat "$args_file")"
grep -oE 'KV cache size: [0-9,]+ tokens' /tmp/server.log | tail -1
