"""Views of a `DeploymentPlan`: JSON for machines, Markdown for people, a PNG figure."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from infra.builders.bundle import render_text
from infra.plan import DeploymentPlan


def plan_as_dict(plan: DeploymentPlan) -> dict[str, Any]:
    """The whole plan as JSON-ready data (config sections by their stack-file key names)."""

    def convert(value: Any) -> Any:
        if isinstance(value, BaseModel):
            return value.model_dump(by_alias=True, mode="json")
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [convert(item) for item in value]
        return value

    data = convert(plan)
    data["fits"] = plan.fits
    data["vllm"]["cli"] = plan.vllm.as_cli()
    data["baseline_vllm"]["cli"] = plan.baseline_vllm.as_cli()
    return data


def plan_json(plan: DeploymentPlan) -> str:
    return json.dumps(plan_as_dict(plan), indent=2, sort_keys=True) + "\n"


def plan_markdown(plan: DeploymentPlan) -> str:
    return render_text("reports/plan.md.j2", plan=plan)


def write_plan(plan: DeploymentPlan, path: Path) -> None:
    """Write the plan as JSON (.json) or Markdown (.md), chosen by the file suffix."""
    writers = {".json": plan_json, ".md": plan_markdown}
    if path.suffix not in writers:
        raise ValueError(f"{path}: use a .json or .md file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(writers[path.suffix](plan))


def plot_plan(plan: DeploymentPlan, path: Path) -> None:
    """Two panels: KV capacity vs context length, and users served within SLO vs GPUs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    curves = plan.curves
    figure, (kv_axis, gpu_axis) = plt.subplots(1, 2, figsize=(12, 4.8))
    title = f"{plan.stack}: {plan.model.name} ({plan.model.quantization}) on {plan.pool.gpu}"
    if plan.model.random_weights:
        title += " — random-weight model"
    figure.suptitle(title)

    kv_axis.plot(
        curves.context_tokens, curves.max_sequences_16bit_kv, marker="o", label="16-bit KV cache"
    )
    if curves.max_sequences_fp8_kv is not None:
        kv_axis.plot(
            curves.context_tokens, curves.max_sequences_fp8_kv, marker="s", label="FP8 KV cache"
        )
    kv_axis.axvline(
        plan.workload.sequence_tokens,
        color="grey",
        linestyle="--",
        label=f"workload sequence ({plan.workload.sequence_tokens:,} tokens)",
    )
    kv_axis.set_xscale("log", base=2)
    kv_axis.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _: f"{v / 1024:g}k" if v >= 1024 else f"{v:g}")
    )
    kv_axis.set_yscale("log")
    kv_axis.set_xlabel("context length per sequence (tokens)")
    kv_axis.set_ylabel("concurrent sequences per replica (KV cache)")
    kv_axis.set_title(
        f"KV capacity per replica (TP={plan.vllm.tensor_parallel_size}, "
        f"util {plan.vllm.gpu_memory_utilization:g})"
    )
    kv_axis.grid(True, which="both", alpha=0.3)
    kv_axis.legend()

    gpu_axis.step(
        curves.gpus,
        curves.users_served,
        where="post",
        marker="o",
        label="optimized: users served within ITL/KV limits",
    )
    gpu_axis.step(
        curves.gpus, curves.baseline_users_served, where="post", marker="x", label="stock vLLM bf16"
    )
    gpu_axis.axhline(
        plan.workload.concurrent_users,
        color="red",
        linestyle="--",
        label=f"target: {plan.workload.concurrent_users} concurrent users",
    )
    gpu_axis.axvline(
        plan.sizing.gpus, color="green", linestyle=":", label=f"plan: {plan.sizing.gpus} GPU(s)"
    )
    gpu_axis.set_xlabel("GPUs")
    gpu_axis.set_ylabel("concurrent users")
    gpu_axis.set_title("Concurrency vs GPUs")
    gpu_axis.grid(True, alpha=0.3)
    gpu_axis.legend()

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
