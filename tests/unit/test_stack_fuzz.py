"""Stack configurations mutated at random (wrong types, out-of-range numbers, unknown and
missing keys, odd YAML): `leanrag plan` ends with exit 0, 2 or 3 — never a traceback — and an
exit 2 names a key (the mutated one, when a key was removed or added). 1,000 cases a run."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from infra.cli import EXIT_BAD_CONFIG, EXIT_DOES_NOT_FIT, EXIT_OK, app
from tests.conftest import ALL_STACKS, stack_raw, write_stack

runner = CliRunner()
CASES_PER_STACK = 250
KEY = re.compile(r"leanrag:[A-Za-z]|\(file\)|config")

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 0.5, 1e9, 1e-9, "", "0", "yes", "H100-80GB", "fp8", "none"]),
    st.text(max_size=12),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(min_size=1, max_size=6), st.integers(), max_size=2),
)


def key_paths(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            paths.append((*prefix, str(key)))
            paths.extend(key_paths(value, (*prefix, str(key))))
    return paths


def _at(raw: dict, path: tuple[str, ...]) -> dict:
    node = raw
    for part in path[:-1]:
        node = node[part]
    return node


@st.composite
def mutated(draw: st.DrawFn, stack: str) -> tuple[str, tuple[str, ...], str]:
    """(kind, path, stack file text) of one mutation."""
    raw = copy.deepcopy(stack_raw(stack))
    paths = key_paths(raw)
    kind = draw(st.sampled_from(["set", "set", "delete", "unknown", "yaml"]))
    path = draw(st.sampled_from(paths))
    if kind == "set":
        _at(raw, path)[path[-1]] = draw(VALUES)
    elif kind == "delete":
        del _at(raw, path)[path[-1]]
    elif kind == "unknown":
        parents = [p for p in paths if isinstance(_at(raw, p)[p[-1]], dict)] or [()]
        path = (*draw(st.sampled_from(parents)), "zz" + draw(st.text("abcxyz", min_size=1)))
        node = raw
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = draw(VALUES)
    document = {"config": {f"leanrag:{key}": value for key, value in raw.items()}}
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if kind == "yaml":
        cut = draw(st.integers(min_value=0, max_value=len(text)))
        text = draw(st.sampled_from([
            text[:cut],  # truncated
            text.replace("  ", "\t", 1),  # a tab in the indentation
            "- a list\n- not a mapping\n",
            text + "config: {}\n",  # a duplicate root key
            "config: [1, 2]\n",
            text[:cut] + ": ]\n" + text[cut:],
        ]))  # fmt: skip
    return kind, path, text


@pytest.mark.parametrize("stack", ALL_STACKS)
def test_mutated_stacks_end_in_a_clear_verdict(stack: str, tmp_path_factory) -> None:
    folder = tmp_path_factory.mktemp(f"fuzz-{stack}")
    write_stack(folder, "base", stack_raw(stack))  # a project folder the CLI accepts
    verdicts: list[int] = []

    @settings(max_examples=CASES_PER_STACK, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
    @given(mutated(stack))
    def case(mutation: tuple[str, tuple[str, ...], str]) -> None:
        kind, path, text = mutation
        (folder / "Pulumi.fuzz.yaml").write_text(text)
        result = runner.invoke(app, ["plan", "--stack", "fuzz", "--stacks-dir", str(folder)])
        assert result.exception is None or isinstance(result.exception, SystemExit), (
            f"{kind} {path}: {result.exception!r}\n{text}"
        )
        assert result.exit_code in (EXIT_OK, EXIT_BAD_CONFIG, EXIT_DOES_NOT_FIT), result.output
        verdicts.append(result.exit_code)
        if result.exit_code == EXIT_BAD_CONFIG:
            output = " ".join(result.output.split())
            assert KEY.search(output), f"{kind} {path}: no key named in {output!r}"
            if kind in ("delete", "unknown"):
                prefixes = ["leanrag:" + ".".join(path[:n]) for n in range(1, len(path) + 1)]
                assert any(p in output for p in prefixes), f"{kind} {path}: {output!r}"

    case()
    # Every case ran, and the mutations reached both accepted and refused configurations.
    assert len(verdicts) >= CASES_PER_STACK
    assert {EXIT_OK, EXIT_BAD_CONFIG} <= set(verdicts), sorted(set(verdicts))


def test_the_fuzzer_reaches_every_verdict(tmp_path: Path) -> None:
    """A check that cannot fail is no check: the mutations do produce 0, 2 and 3."""
    raw = stack_raw("prod")
    write_stack(tmp_path, "ok", raw)
    write_stack(tmp_path, "bad", {**raw, "workload": 3})
    write_stack(tmp_path, "huge", {**raw, "workload": {**raw["workload"],
                                                      "concurrentUsers": 10**6}})  # fmt: skip
    codes = [
        runner.invoke(app, ["plan", "--stack", s, "--stacks-dir", str(tmp_path)]).exit_code
        for s in ("ok", "bad", "huge")
    ]
    assert codes == [EXIT_OK, EXIT_BAD_CONFIG, EXIT_DOES_NOT_FIT]
