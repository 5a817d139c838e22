"""Shared test helpers: stack files as raw mappings, and edits to them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.stack_source import STACKS_DIR, raw_from_stack_file

SHARED = Path(__file__).resolve().parents[2] / "shared"
CLUSTER_STACKS = ("dev", "staging", "prod")
ALL_STACKS = (*CLUSTER_STACKS, "local")

_DELETE = object()


def stack_raw(stack: str) -> dict[str, Any]:
    return raw_from_stack_file(STACKS_DIR / f"Pulumi.{stack}.yaml")


def edited(raw: dict[str, Any], path: str, value: Any = _DELETE) -> dict[str, Any]:
    """A deep copy of `raw` with the dotted `path` set to `value` (or removed)."""
    result = copy.deepcopy(raw)
    *parents, leaf = path.split(".")
    node = result
    for part in parents:
        node = node.setdefault(part, {})
    if value is _DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return result


def write_stack(directory: Path, stack: str, raw: dict[str, Any]) -> Path:
    """Write a Pulumi stack file holding `raw` under the leanrag: namespace."""
    path = directory / f"Pulumi.{stack}.yaml"
    document = {"config": {f"leanrag:{key}": value for key, value in raw.items()}}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


DELETE = _DELETE

REQUEST_COLUMNS = ["start_s", "end_s", "ttft_ms", "itl_ms", "prompt_tokens", "output_tokens"]


def write_request_rows(run: Path, rows: list[list[float]], profile: str = "stock") -> Path:
    """A gate run folder whose trimmed GuideLLM report keeps one row per request (start, end,
    TTFT, ITL, tokens), as the gate writes it since 2026-12-04."""
    run.mkdir(parents=True, exist_ok=True)
    timeline = {"origin_time": 0.0, "columns": REQUEST_COLUMNS, "rows": rows}
    report = {"benchmarks": [{"leanrag_requests": timeline}]}
    (run / f"guidellm-{profile}-rag-trimmed.json").write_text(json.dumps(report))
    return run


@pytest.fixture
def prod_raw() -> dict[str, Any]:
    return stack_raw("prod")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """A run without the upstream schemas says so, instead of passing quietly."""
    from tests.contract.crd_sources import NO_SCHEMAS, schema_dir

    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if NO_SCHEMAS in str(report.longrepr)
    ]
    if skipped and schema_dir() is None:
        terminalreporter.write_sep(
            "!", f"{len(skipped)} schema tests did not run: {NO_SCHEMAS}", red=True, bold=True
        )
