"""One-way dependencies: workloads never import the Pulumi program; the program imports only
the workloads' contract (the plan → workload data), their templating and the vLLM plugin's
files. Each workload image then holds its workload and the contract, nothing else."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# What `infra` may import from `workloads`.
CONTRACT = {"workloads.contract", "workloads.templating", "workloads.vllm_plugin"}


def imported_modules(path: Path) -> set[str]:
    """Every module an `import` or `from ... import` names, anywhere in the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", sources("workloads"), ids=lambda p: str(p.relative_to(ROOT)))
def test_workloads_never_import_the_pulumi_program(path: Path) -> None:
    offending = {m for m in imported_modules(path) if m == "infra" or m.startswith("infra.")}
    assert not offending, f"{path.relative_to(ROOT)} imports {sorted(offending)}"


@pytest.mark.parametrize("path", sources("infra"), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_program_imports_only_the_workload_contract(path: Path) -> None:
    from_workloads = {m for m in imported_modules(path) if m.split(".")[0] == "workloads"}
    outside = {m for m in from_workloads if not any(m.startswith(c) for c in CONTRACT)}
    assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)}"


def test_the_contract_is_standard_library_only() -> None:
    third_party = {
        m
        for m in imported_modules(ROOT / "workloads" / "contract.py")
        if m.split(".")[0] not in sys.stdlib_module_names
    }
    assert third_party <= {"__future__"}, third_party


def test_the_layering_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from infra.plan import build_plan\n    import infra.catalog\n")
    assert imported_modules(module) == {"infra.plan", "infra.catalog"}
