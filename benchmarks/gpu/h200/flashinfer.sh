#!/usr/bin/env bash
# Sourced on the GPU machine (after assemble.sh) before anything runs FlashInfer — serve.sh for
# a server whose arguments name FLASHINFER, and attention_rates.py --flashinfer:
#   source benchmarks/gpu/h200/flashinfer.sh || exit 1
# Installs the carried wheels (gpu-bundle/fi: carry it) into /tmp/site once, and readies the
# JIT FlashInfer needs on Hopper (its prebuilt cubins are Blackwell-only): the image's nvcc and
# a host C++ compiler, ninja from its wheel, kernels cached under /tmp while the machine is
# held. Returns 1, naming what is missing, where a build could not run.
# FI_WHEELS, SITE, CUDA_HOME: stand-ins for tests.
fi_wheels=${FI_WHEELS:-gpu-bundle/fi}
fi_site=${SITE:-/tmp/site}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export PATH=$fi_site/ninja/data/bin:$fi_site/bin:$CUDA_HOME/bin:$PATH
export FLASHINFER_WORKSPACE_BASE=${FLASHINFER_WORKSPACE_BASE:-/tmp}
flashinfer_ready() {
  command -v nvcc >/dev/null || {
    echo "FlashInfer: no nvcc (CUDA_HOME=$CUDA_HOME): its kernels cannot be built here"; return 1; }
  command -v "${CXX:-c++}" >/dev/null || {
    echo "FlashInfer: no host C++ compiler (${CXX:-c++}) for nvcc: set CXX"; return 1; }
  if [ ! -d "$fi_site/flashinfer" ]; then
    ls "$fi_wheels"/flashinfer_python-*.whl >/dev/null 2>&1 || {
      echo "FlashInfer: no wheels in $fi_wheels: carry it (bundle.sh builds it)"; return 1; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$fi_site" "$fi_wheels"/*.whl || return 1
  fi
  command -v ninja >/dev/null || { echo "FlashInfer: no ninja on PATH after the install"; return 1; }
  echo "FlashInfer: $(command -v nvcc), $(command -v "${CXX:-c++}"), $(command -v ninja)"
}
flashinfer_ready
