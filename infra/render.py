"""`leanrag render`: the manifests a stack would apply, as files, without a cluster.

One file per object (`<NN>-<concern>/<wave>-<kind>.<namespace>.<name>.yaml`, sorted keys);
Helm charts as Flux HelmRepository + HelmRelease objects. Every file in a numbered folder is
a Kubernetes object: apply the folders in order with `kubectl apply -f` (or let Argo CD or
Flux sync them) once the CRDs they use exist. Upstream CRD bundles the stack applies by URL
are listed in `PREREQUISITES.md` at the top, outside the apply folders. The output folder is
replaced as a whole, so a removed resource disappears from it and nothing is ever
half-written.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from infra.builders.bundle import Bundle, wave
from infra.builders.stack import CONCERNS, platform_bundles
from infra.plan import DeploymentPlan

MARKER = ".leanrag-render"


class RenderError(Exception):
    """The output folder cannot be written safely."""


def file_name(obj: dict[str, Any]) -> str:
    """`<wave>-<kind>.<namespace>.<name>.yaml`: `kubectl apply -f <folder>` takes files in name
    order, so the creation wave leads (a Namespace before the objects in it)."""
    metadata = obj["metadata"]
    parts = [obj["kind"].lower(), metadata.get("namespace"), metadata["name"]]
    return f"{wave(obj)}-" + ".".join(p for p in parts if p) + ".yaml"


def bundle_files(bundle: Bundle) -> dict[str, dict[str, Any]]:
    """File name → document for one bundle."""
    objects = [*bundle.objects, *(obj for chart in bundle.charts for obj in chart.flux_objects())]
    return {file_name(obj): obj for obj in objects}


def prerequisites(bundles: list[Bundle]) -> str:
    """What must exist before the folders apply: Flux (for the charts) and upstream CRD
    bundles, by URL."""
    lines = [
        "# Before applying the numbered folders",
        "",
        "Apply the folders in numeric order with `kubectl apply -f <folder>` (or sync them with",
        "Argo CD / Flux). They need:",
        "",
    ]
    if any(bundle.charts for bundle in bundles):
        lines.append(
            "- Flux's source and helm controllers (`flux install`): the Helm charts are "
            "`HelmRepository` + `HelmRelease` objects in the `flux-system` namespace."
        )
    for bundle in bundles:
        for manifest in bundle.remote:
            apply = f"`kubectl apply --server-side -f {manifest.url}`"
            lines.append(f"- {manifest.name} ({bundle.concern}): {apply}")
    return "\n".join(lines) + "\n"


def render_stack(plan: DeploymentPlan, out_dir: Path) -> list[Path]:
    """Write every manifest of the stack under `out_dir`; return the files written."""
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MARKER).exists():
        raise RenderError(
            f"{out_dir} holds files that `leanrag render` did not write; choose an empty folder"
        )
    order = {concern: index for index, (concern, _) in enumerate(CONCERNS)}
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        (staging / MARKER).write_text(f"stack: {plan.stack}\n")
        bundles = platform_bundles(plan)
        (staging / "PREREQUISITES.md").write_text(prerequisites(bundles))
        for bundle in bundles:
            folder = staging / f"{order[bundle.concern]:02d}-{bundle.concern}"
            folder.mkdir()
            for name, document in bundle_files(bundle).items():
                text = yaml.safe_dump(document, sort_keys=True, default_flow_style=False)
                (folder / name).write_text(text)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return sorted(p for p in out_dir.rglob("*.yaml"))
