"""`leanrag gate`: a release is blocked unless the recorded gate passed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from infra.cli import app

runner = CliRunner()


def gate_file(tmp_path: Path, verdict: str, passed: bool) -> Path:
    path = tmp_path / "gate.json"
    path.write_text(
        json.dumps(
            {
                "verdict": verdict,
                "reason": "r",
                "checks": [
                    {
                        "name": "ttft_p95_ms",
                        "measured": 812.0,
                        "target": "<= 2000",
                        "passed": passed,
                    }
                ],
            }
        )
    )
    return path


@pytest.mark.parametrize(
    ("verdict", "passed", "code"),
    [("pass", True, 0), ("fail", False, 1), ("could-not-measure", True, 2)],
)
def test_exit_code_follows_the_verdict(
    tmp_path: Path, verdict: str, passed: bool, code: int
) -> None:
    result = runner.invoke(
        app, ["gate", "--stack", "prod", "--result", str(gate_file(tmp_path, verdict, passed))]
    )
    assert result.exit_code == code, result.output
    assert verdict in result.output
    assert "ttft_p95_ms: 812.000" in result.output


def test_missing_result_blocks_the_release(tmp_path: Path) -> None:
    result = runner.invoke(app, ["gate", "--stack", "prod", "--result", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "has the gate Job run?" in result.output


def test_without_kubectl_it_says_how_to_proceed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    result = runner.invoke(app, ["gate", "--stack", "prod"])
    assert result.exit_code == 2
    assert "pass --result gate.json" in result.output
