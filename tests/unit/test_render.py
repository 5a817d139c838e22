"""`leanrag render`: one file per resource, stable names, atomic replacement, golden prod."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from infra.builders.stack import platform_bundles
from infra.cli import EXIT_BAD_CONFIG, EXIT_DOES_NOT_FIT, EXIT_OK, app
from infra.plan import build_plan
from infra.render import MARKER, RenderError, render_stack
from infra.stack_source import load_stack
from tests.conftest import CLUSTER_STACKS, edited, stack_raw, write_stack

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "prod"
runner = CliRunner()


def rendered(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*.yaml"))}


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_render_writes_one_file_per_resource(stack: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["render", "--stack", stack, "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_OK, result.output
    files = rendered(tmp_path / "out")
    plan = build_plan(load_stack(stack), stack)
    bundles = platform_bundles(plan)
    # Each chart is two Flux objects (HelmRepository + HelmRelease); remote CRD bundles are
    # listed in PREREQUISITES.md, not in an apply folder.
    expected = sum(len(b.objects) + 2 * len(b.charts) for b in bundles)
    assert len(files) == expected
    for name, text in files.items():
        document = yaml.safe_load(text)
        assert text == yaml.safe_dump(document, sort_keys=True), f"{name} keys are not sorted"
        assert Path(name).name.split("-", 1)[1].startswith(document["kind"].lower() + ".")


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_kubectl_apply_in_folder_then_file_order_creates_namespaces_first(
    stack: str, tmp_path: Path
) -> None:
    """`kubectl apply -f` each numbered folder in turn (files in name order): no object is sent
    before the Namespace it lives in, when the stack creates that Namespace."""
    render_stack(build_plan(load_stack(stack), stack), tmp_path / "out")
    documents = [
        (path, yaml.safe_load(path.read_text()))
        for folder in sorted(p for p in (tmp_path / "out").iterdir() if p.is_dir())
        for path in sorted(folder.glob("*.yaml"))
    ]
    ours = {d["metadata"]["name"] for _, d in documents if d["kind"] == "Namespace"}
    created: set[str] = set()
    for path, document in documents:
        namespace = document["metadata"].get("namespace")
        assert namespace not in ours or namespace in created, f"{path} before its Namespace"
        if document["kind"] == "Namespace":
            created.add(document["metadata"]["name"])


def test_prod_rendering_matches_the_reviewed_golden_files(tmp_path: Path) -> None:
    render_stack(build_plan(load_stack("prod"), "prod"), tmp_path / "prod")
    assert rendered(tmp_path / "prod") == rendered(GOLDEN), (
        "the prod rendering changed: run `make golden` and review the diff in tests/golden/prod"
    )


def test_render_replaces_its_own_output_and_drops_stale_files(tmp_path: Path) -> None:
    out = tmp_path / "out"
    render_stack(build_plan(load_stack("prod"), "prod"), out)
    stale = out / "05-llm-d" / "gateway.leanrag-serving.old.yaml"
    stale.write_text("{}\n")
    render_stack(build_plan(load_stack("dev"), "dev"), out)
    assert not stale.exists()
    assert (out / MARKER).read_text() == "stack: dev\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out-")]


def test_render_refuses_a_folder_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RenderError):
        render_stack(build_plan(load_stack("prod"), "prod"), tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    result = runner.invoke(app, ["render", "--stack", "prod", "--out", str(tmp_path)])
    assert result.exit_code == EXIT_BAD_CONFIG


def test_helm_charts_are_flux_releases_and_every_file_is_an_object(tmp_path: Path) -> None:
    raw = edited(
        edited(edited(stack_raw("prod"), "platform", "kubernetes"), "gpuPool.aws"),
        "gpuPool.clusterAutoscaler",
    )
    write_stack(tmp_path, "k8s", raw)
    result = runner.invoke(
        app,
        ["render", "--stack", "k8s", "--stacks-dir", str(tmp_path), "--out", str(tmp_path / "out")],
    )
    assert result.exit_code == EXIT_OK, result.output
    documents = [yaml.safe_load(p.read_text()) for p in (tmp_path / "out").rglob("*.yaml")]
    # Every file in an apply folder is a Kubernetes object: kubectl can apply it.
    assert all(d.get("apiVersion") and d.get("kind") and d["metadata"]["name"] for d in documents)
    releases = {d["metadata"]["name"]: d for d in documents if d["kind"] == "HelmRelease"}
    repositories = {d["metadata"]["name"]: d for d in documents if d["kind"] == "HelmRepository"}
    charts = {r["spec"]["chart"]["spec"]["chart"] for r in releases.values()}
    assert charts >= {"gpu-operator", "cert-manager", "keda"}
    for name, release in releases.items():
        spec = release["spec"]["chart"]["spec"]
        assert spec["version"] and spec["sourceRef"] == {"kind": "HelmRepository", "name": name}
        assert repositories[name]["spec"]["url"]
    prerequisites = (tmp_path / "out" / "PREREQUISITES.md").read_text()
    assert "flux install" in prerequisites
    assert "gateway-api-inference-extension" in prerequisites


def test_render_refuses_local_and_misfit_stacks(tmp_path: Path) -> None:
    local = runner.invoke(app, ["render", "--stack", "local", "--out", str(tmp_path / "a")])
    assert local.exit_code == EXIT_BAD_CONFIG
    write_stack(tmp_path, "huge", edited(stack_raw("prod"), "workload.concurrentUsers", 5000))
    huge = runner.invoke(
        app,
        ["render", "--stack", "huge", "--stacks-dir", str(tmp_path), "--out", str(tmp_path / "b")],
    )
    assert huge.exit_code == EXIT_DOES_NOT_FIT
    assert not (tmp_path / "b").exists()
