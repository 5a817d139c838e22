#!/usr/bin/env bash
# On the GPU machine, serve.sh's server up with a `-profiled` args file (plans.py: the profile's
# arguments plus vLLM's torch profiler, stopping itself after PROFILE_STEPS engine steps):
# load it at STREAMS concurrent requests of prod's shape, wait for a steady state, have vLLM
# trace the steps, and summarize the trace by kernel kind (kernel_profile.py).
#   bash benchmarks/gpu/h200/profile.sh NAME STREAMS [INPUT OUTPUT]
# Steady means: the first wave has completed (≥ STREAMS requests done) and ≥ 90 % of STREAMS
# are running; a level that never gets there is not traced (exit 3). The counts before and
# after the traced steps are filed with the summary (load.txt): 30 steps last 1-2 s, so a
# closed loop that moves in waves (stock) is traced in whichever phase it is in — no request
# done or sent during the trace means a decode-only stretch.
set -uo pipefail
name=${1:?name}; streams=${2:?streams}; input=${3:-6400}; output=${4:-384}
state=${SERVER_STATE:-/tmp/server.args}
grep -q -- '--profiler-config' "$state" 2>/dev/null \
  || { echo "the running server has no --profiler-config: serve a -profiled args file"; exit 2; }
prof=$(grep -oE '"torch_profiler_dir":"[^"]+"' "$state" | cut -d'"' -f4)
layers=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' \
  "$(grep -oE -- '--model [^ ]+' "$state" | cut -d' ' -f2)/config.json")
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1
url=${VLLM_URL:-http://127.0.0.1:8000}; log=${SERVER_LOG:-/tmp/server.log}  # (tests: a stand-in)
bench=${BENCH:-python3 -m vllm.entrypoints.cli.main bench serve}
out=${OUT:-/tmp/out}/$name
mkdir -p "$out" "$prof" && rm -f "$prof"/*
cp "$state" "$out/server.args"
cp "${state%.args}-config.log" "$out/server-config.log" 2>/dev/null
metric() { curl -sf "$url/metrics" | awk -v m="$1" '$1 ~ "^"m"[{ ]" {s += $2} END {print s + 0}'; }
from_line=$(wc -l < "$log")
base=$(metric vllm:request_success_total)
# shellcheck disable=SC2086
$bench --backend vllm --base-url "$url" \
  --model m --tokenizer gpu-bundle/llama8b-bpe --dataset-name random --random-input-len "$input" \
  --random-output-len "$output" --ignore-eos --max-concurrency "$streams" \
  --num-prompts $(( 4 * streams )) --seed "$(date +%s)" > "$out/bench.log" 2>&1 &
load=$!
steady=no
for _ in $(seq 1 "${STEADY_POLLS:-150}"); do
  sleep "${POLL_S:-2}"
  done_n=$(( $(metric vllm:request_success_total | cut -d. -f1) - ${base%.*} ))
  running=$(metric vllm:num_requests_running)
  if [ "$done_n" -ge "$streams" ] && [ $(( ${running%.*} * 10 )) -ge $(( streams * 9 )) ]; then
    steady=yes; break
  fi
done
if [ "$steady" != yes ]; then
  kill "$load" 2>/dev/null; wait "$load" 2>/dev/null
  echo "steady no: never $streams done and 90 % of $streams running" | tee "$out/load.txt"
  exit 3
fi
before="done $(metric vllm:request_success_total) running $(metric vllm:num_requests_running) waiting $(metric vllm:num_requests_waiting)"
curl -sf -X POST "$url/start_profile" > /dev/null
sleep "${PROFILE_S:-6}"
after="done $(metric vllm:request_success_total) running $(metric vllm:num_requests_running) waiting $(metric vllm:num_requests_waiting)"
curl -sf -X POST "$url/stop_profile" > /dev/null
# The worker writes (and gzips) the trace after it stops: wait for a file whose size holds.
trace="" size=-1 settle=${SETTLE_S:-2}
for _ in $(seq 1 60); do
  trace=$(find "$prof" -name '*.pt.trace.json*' -size +0 2>/dev/null | head -1)
  if [ -n "$trace" ]; then
    now=$(stat -c %s "$trace")
    [ "$now" = "$size" ] && break
    size=$now
  fi
  sleep "$settle"
done
kill "$load" 2>/dev/null; wait "$load" 2>/dev/null
tail -n +"$from_line" "$log" | grep -v '"POST \|"GET ' > "$out/server-stats.log"
printf 'steady %s\nbefore the traced steps: %s\nafter them: %s\ntrace %s\n' \
  "$steady" "$before" "$after" "${trace:-none}" | tee "$out/load.txt"
[ -n "$trace" ] || { echo "$name: vLLM wrote no trace under $prof"; exit 3; }
python3 -m benchmarks.gpu.h200.kernel_profile "$trace" --layers "$layers" --out "$out" \
  --title "GPU time of a serving step at $streams streams of $input / $output ($name)"
