#!/usr/bin/env bash
# On the GPU machine, serve.sh's server up with a `-profiled` args file (plans.py: the profile's
# arguments plus vLLM's torch profiler, stopping itself after PROFILE_STEPS engine steps):
# load it at STREAMS concurrent requests of prod's shape, wait for a steady state, have vLLM
# trace the steps, and summarize the trace by kernel kind (kernel_profile.py).
#   bash benchmarks/gpu/h200/profile.sh NAME STREAMS [INPUT OUTPUT]
# Steady means: the first wave has completed (≥ STREAMS requests done) and ≥ 90 % of STREAMS
# are running; the counts before and after the traced steps are filed with the summary, and a
# trace taken off that state is refused (exit 3) rather than summarized.
set -uo pipefail
name=${1:?name}; streams=${2:?streams}; input=${3:-6400}; output=${4:-384}
state=${SERVER_STATE:-/tmp/server.args}
grep -q -- '--profiler-config' "$state" 2>/dev/null \
  || { echo "the running server has no --profiler-config: serve a -profiled args file"; exit 2; }
prof=$(grep -oE '"torch_profiler_dir":"[^"]+"' "$state" | cut -d'"' -f4)
layers=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["num_hidden_layers"])' \
  "$(grep -oE -- '--model [^ ]+' "$state" | cut -d' ' -f2)/config.json")
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1
out=${OUT:-/tmp/out}/$name
mkdir -p "$out" "$prof" && rm -f "$prof"/*
cp "$state" "$out/server.args"
cp "${state%.args}-config.log" "$out/server-config.log" 2>/dev/null
metric() { curl -sf 127.0.0.1:8000/metrics | awk -v m="$1" '$1 ~ "^"m"[{ ]" {s += $2} END {print s + 0}'; }
from_line=$(wc -l < /tmp/server.log)
base=$(metric vllm:request_success_total)
python3 -m vllm.entrypoints.cli.main bench serve --backend vllm --base-url http://127.0.0.1:8000 \
  --model m --tokenizer gpu-bundle/llama8b-bpe --dataset-name random --random-input-len "$input" \
  --random-output-len "$output" --ignore-eos --max-concurrency "$streams" \
  --num-prompts $(( 4 * streams )) --seed "$(date +%s)" > "$out/bench.log" 2>&1 &
bench=$!
steady=no
for _ in $(seq 1 150); do
  sleep 2
  done_n=$(( $(metric vllm:request_success_total | cut -d. -f1) - ${base%.*} ))
  running=$(metric vllm:num_requests_running)
  if [ "$done_n" -ge "$streams" ] && [ $(( ${running%.*} * 10 )) -ge $(( streams * 9 )) ]; then
    steady=yes; break
  fi
done
before="done $(metric vllm:request_success_total) running $(metric vllm:num_requests_running) waiting $(metric vllm:num_requests_waiting)"
curl -sf -X POST 127.0.0.1:8000/start_profile > /dev/null
sleep "${PROFILE_S:-6}"
after="done $(metric vllm:request_success_total) running $(metric vllm:num_requests_running) waiting $(metric vllm:num_requests_waiting)"
curl -sf -X POST 127.0.0.1:8000/stop_profile > /dev/null
trace=""
for _ in $(seq 1 60); do  # the worker writes (and gzips) the trace after it stops
  trace=$(find "$prof" -name '*.pt.trace.json*' -size +1k 2>/dev/null | head -1)
  [ -n "$trace" ] && sleep 3 && break
  sleep 2
done
kill "$bench" 2>/dev/null; wait "$bench" 2>/dev/null
tail -n +"$from_line" /tmp/server.log | grep -v '"POST \|"GET ' > "$out/server-stats.log"
printf 'steady %s\nbefore the traced steps: %s\nafter them: %s\ntrace %s\n' \
  "$steady" "$before" "$after" "${trace:-none}" | tee "$out/load.txt"
[ "$steady" = yes ] || { echo "$name: never steady at $streams streams: no summary"; exit 3; }
[ -n "$trace" ] || { echo "$name: vLLM wrote no trace under $prof"; exit 3; }
python3 -m benchmarks.gpu.h200.kernel_profile "$trace" --layers "$layers" --out "$out" \
  --title "GPU time of a serving step at $streams streams of $input / $output ($name)"
