"""`leanrag plan`: output, files, figure and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import EXIT_BAD_CONFIG, EXIT_DOES_NOT_FIT, EXIT_OK, app
from tests.conftest import edited, stack_raw, write_stack

runner = CliRunner()


@pytest.mark.parametrize("stack", ["dev", "staging", "prod", "local"])
def test_plan_prints_sizing_cost_and_vllm_args(stack: str) -> None:
    result = runner.invoke(app, ["plan", "--stack", stack])
    assert result.exit_code == EXIT_OK, result.output
    assert "KV-cache tokens per replica" in result.output
    assert "cost per request" in result.output
    assert "--max-num-seqs" in result.output
    assert "fits" in result.output


def test_plan_writes_json_markdown_and_a_figure(tmp_path: Path) -> None:
    json_path, md_path, png_path = tmp_path / "p.json", tmp_path / "p.md", tmp_path / "p.png"
    result = runner.invoke(
        app,
        [
            "plan",
            "--stack",
            "prod",
            "--output",
            str(json_path),
            "--output",
            str(md_path),
            "--plot",
            str(png_path),
        ],
    )
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(json_path.read_text())["stack"] == "prod"
    assert md_path.read_text().startswith("# Deployment plan — stack `prod`")
    png = png_path.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 30_000  # two panels of lines and labels, not an empty canvas


def test_bad_config_exits_2_naming_file_key_and_fix(tmp_path: Path) -> None:
    write_stack(tmp_path, "broken", edited(stack_raw("prod"), "serving.quantization", "int3"))
    result = runner.invoke(app, ["plan", "--stack", "broken", "--stacks-dir", str(tmp_path)])
    assert result.exit_code == EXIT_BAD_CONFIG
    assert "Pulumi.broken.yaml" in result.output
    assert "leanrag:serving.quantization = 'int3'" in result.output
    assert "choose one of" in result.output


def test_unknown_stack_exits_2() -> None:
    result = runner.invoke(app, ["plan", "--stack", "nope"])
    assert result.exit_code == EXIT_BAD_CONFIG
    assert "known stacks" in result.output


def test_bad_output_suffix_exits_2_before_writing(tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "--stack", "dev", "--output", str(tmp_path / "p.txt")])
    assert result.exit_code == EXIT_BAD_CONFIG
    assert not (tmp_path / "p.txt").exists()


def test_workload_that_does_not_fit_exits_3_with_the_fix(tmp_path: Path) -> None:
    write_stack(tmp_path, "huge", edited(stack_raw("prod"), "workload.concurrentUsers", 5000))
    result = runner.invoke(app, ["plan", "--stack", "huge", "--stacks-dir", str(tmp_path)])
    assert result.exit_code == EXIT_DOES_NOT_FIT
    assert "does not fit" in result.output
    assert "smallest fix: raise gpuPool.maxNodes to" in result.output


def test_stacks_are_read_from_the_project_the_user_stands_in(tmp_path, monkeypatch) -> None:
    """A copy of the project with an edited stack file is planned from the copy's file."""
    import shutil

    import yaml

    from infra.stack_source import PROJECT_ROOT

    copy = tmp_path / "my-project"
    (copy / "infra").mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "Pulumi.yaml", copy / "Pulumi.yaml")
    shutil.copytree(PROJECT_ROOT / "stacks", copy / "stacks")
    path = copy / "stacks" / "Pulumi.local.yaml"
    stack = yaml.safe_load(path.read_text())
    stack["config"]["leanrag:workload"]["outputTokens"] = 48
    path.write_text(yaml.safe_dump(stack))
    monkeypatch.chdir(copy / "infra")  # a subfolder: found by walking up to Pulumi.yaml
    result = runner.invoke(app, ["plan", "--stack", "local", "--output", str(tmp_path / "p.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "p.json").read_text())["gate"]["output_tokens"] == 48
    monkeypatch.chdir(tmp_path)
    missing = runner.invoke(app, ["plan", "--stack", "local"])
    assert missing.exit_code == 2
    assert "no Pulumi.yaml in" in missing.output and "--stacks-dir" in missing.output
    explicit = runner.invoke(app, ["plan", "--stack", "local", "--stacks-dir",
                                   str(copy / "stacks")])  # fmt: skip
    assert explicit.exit_code == 0, explicit.output


def test_an_unexpected_error_in_local_up_is_a_failed_step_not_a_failed_gate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`local up` exits 1 only when the gate failed; a crash (an uncaught exception would exit
    1 too) is a failed step, exit 2, with its traceback."""
    from infra.cli import EXIT_GATE_FAILED, EXIT_STEP_FAILED
    from infra.local import stack

    def crash(self: stack.LocalStack) -> dict:
        raise RuntimeError("milvus went away")

    monkeypatch.setattr(stack.LocalStack, "up", crash)
    result = runner.invoke(app, ["local", "up", "--run-dir", str(tmp_path / "run")])
    assert result.exit_code == EXIT_STEP_FAILED != EXIT_GATE_FAILED
    assert "milvus went away" in result.output and "local stack failed" in result.output
