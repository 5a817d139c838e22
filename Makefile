# Task runner for Lean RAG Accelerator. Every target installs what it needs first.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STACK  ?= local
STAMP  := $(VENV)/.installed

.PHONY: plan render golden test lint format venv clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[infra,dev]'
	touch $(STAMP)

venv: $(STAMP)

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

## test: lint, then every test
test: $(STAMP) lint
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
