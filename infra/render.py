"""`leanrag render`: the manifests a stack would apply, as files, without a cluster.

One file per object (`<NN>-<concern>/<kind>.<namespace>.<name>.yaml`, sorted keys), Helm charts
and upstream CRD bundles as recorded references. The output folder is replaced as a whole, so
a removed resource disappears from it and nothing is ever half-written.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import yaml

from infra.builders.bundle import Bundle
from infra.builders.stack import CONCERNS, platform_bundles
from infra.plan import DeploymentPlan

MARKER = ".leanrag-render"


class RenderError(Exception):
    """The output folder cannot be written safely."""


def file_name(obj: dict[str, Any]) -> str:
    metadata = obj["metadata"]
    parts = [obj["kind"].lower(), metadata.get("namespace"), metadata["name"]]
    return ".".join(p for p in parts if p) + ".yaml"


def bundle_files(bundle: Bundle) -> dict[str, dict[str, Any]]:
    """File name → document for one bundle."""
    files = {file_name(obj): obj for obj in bundle.objects}
    for chart in bundle.charts:
        files[f"helmchart.{chart.namespace}.{chart.release}.yaml"] = chart.reference()
    for manifest in bundle.remote:
        files[f"remote.{manifest.name}.yaml"] = manifest.reference()
    return files


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
        for bundle in platform_bundles(plan):
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
