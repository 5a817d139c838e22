"""Every command the README shows, run as a newcomer runs it: from a fresh copy of the project
(its tracked files only), through `make` where the README says `make`, with the environments
`make test` built. A broken README command turns CI red."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA_VENV = ROOT / ".venv"
WL_VENV = Path(sys.executable).parents[1]
GOLDEN_REPORT = ROOT / "tests" / "golden" / "guidellm" / "vllm-cpu-rag-level.json"

pytestmark = pytest.mark.skipif(
    not (INFRA_VENV / "bin" / "leanrag").exists() or shutil.which("git") is None,
    reason="needs .venv (make venv) and git",
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of what a clone holds: the tracked files, no environments, no outputs."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode()
    copy = tmp_path_factory.mktemp("clone") / "lean-rag-accelerator"
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


def run(project: Path, *command: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=900)
    tail = f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode in ok, f"{' '.join(command)} exited {done.returncode}:\n{tail}"
    return done


def make(project: Path, *target: str) -> subprocess.CompletedProcess:
    # The environments `make test` built, used as they are: without --old-file make would
    # reinstall them from the copy (its files are newer), pointing them at a temporary folder.
    stamps = [f"--old-file={venv}/.installed" for venv in (INFRA_VENV, WL_VENV)]
    return run(project, "make", *stamps, *target, f"VENV={INFRA_VENV}", f"WL_VENV={WL_VENV}")


def test_make_plan(project: Path) -> None:
    make(project, "plan")
    plan = json.loads((project / "out" / "plan-local.json").read_text())
    assert plan["stack"] == "local" and plan["gate"]["concurrency"] >= 1
    assert (project / "out" / "plan-local.png").stat().st_size > 0


def test_leanrag_plan_reads_the_copy_it_stands_in(project: Path) -> None:
    stack = project / "stacks" / "Pulumi.prod.yaml"
    stack.write_text(stack.read_text().replace("concurrentUsers: 256", "concurrentUsers: 64"))
    run(project, str(INFRA_VENV / "bin" / "leanrag"), "plan", "--stack", "prod",
        "--output", "plan.json")  # fmt: skip
    assert json.loads((project / "plan.json").read_text())["gate"]["concurrency"] == 64


def test_make_render_writes_only_kubernetes_objects(project: Path) -> None:
    make(project, "render", "STACK=prod")
    files = list((project / "out" / "manifests-prod").rglob("*.yaml"))
    assert len(files) > 20
    for path in files:
        document = yaml.safe_load(path.read_text())
        assert document["apiVersion"] and document["kind"] and document["metadata"]["name"], path


def test_make_rag_eval(project: Path) -> None:
    make(project, "rag-eval")
    result = json.loads((project / "benchmarks" / "results" / "rag_retrieval.json").read_text())
    assert result["questions"] > 0 and 0 < result["recall_at_k"] <= 1


def test_leanrag_quantize(project: Path, tiny_model: Path, calibration_file: Path) -> None:
    out = project / "tiny-w4a16"
    quantize = str(WL_VENV / "bin" / "leanrag-quantize")
    run(project, quantize, "--model", str(tiny_model), "--scheme", "w4a16",
        "--calibration", str(calibration_file), "--output", str(out))  # fmt: skip
    manifest = json.loads((out / "leanrag-quantize.json").read_text())
    assert manifest["scheme"] == "w4a16"


def test_leanrag_benchmark_from_report_then_leanrag_gate(project: Path) -> None:
    run(project, str(INFRA_VENV / "bin" / "leanrag"), "plan", "--stack", "local",
        "--output", "plan-local.json")  # fmt: skip
    gate = run(project, str(WL_VENV / "bin" / "leanrag-benchmark"), "--plan", "plan-local.json",
               "--target", "http://vllm:8000", "--from-report", str(GOLDEN_REPORT),
               "--out", "gate/", ok=(0, 1))  # fmt: skip
    verdict = json.loads((project / "gate" / "gate.json").read_text())["verdict"]
    released = run(project, str(INFRA_VENV / "bin" / "leanrag"), "gate", "--stack", "local",
                   "--result", "gate/gate.json", ok=(0, 1, 2))  # fmt: skip
    assert released.returncode == gate.returncode == {"pass": 0, "fail": 1}[verdict]
