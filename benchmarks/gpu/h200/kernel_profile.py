"""Where a serving step's GPU time goes, read from vLLM's own torch-profiler trace.

`profile.sh` (on the GPU machine) loads the server at a steady level and has vLLM trace a
fixed number of engine steps (`--profiler-config`, `max_iterations`); this reads the trace's
GPU activity — kernels, copies, memsets — and states, over the profiled span:
- how much of the span the GPU was busy (the rest: the host between kernels);
- each kind of kernel's share of the busy time, with its launches, and the top kernels by
  name (so nothing hides behind the kinds' rules);
- the steps the trace holds (the main attention kernel's launches / layers), to cross-check
  `max_iterations`.

    python -m benchmarks.gpu.h200.kernel_profile TRACE.json[.gz] --layers 32 --out DIR
    python -m benchmarks.gpu.h200.kernel_profile DIR/kernels.json --summary --layers 32 --out DIR

A trace without GPU kernels (the profiler ran without CUDA activity) is refused: it would
report an empty GPU as an idle one.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

# (kind, substrings of the lower-cased kernel name): the first kind whose substring matches.
# Order matters: vLLM's KV-cache write is `reshape_and_cache_flash` (not attention), Inductor's
# kernels are `triton_*` whatever ops they fused, and the per-token quantization kernel's name
# says fp8 (not a GEMM).
KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("KV-cache write", ("reshape_and_cache", "concat_and_cache")),
    ("fused pointwise (Inductor: norms, rotary, SiLU, quant)", ("triton_",)),
    ("attention", ("flash", "fmha", "attn", "attention")),
    ("activation quantization", ("quant",)),
    ("GEMM, FP8", ("e4m3", "fp8", "scaled_mm")),
    ("GEMM, 16-bit", ("gemm", "nvjet", "xmma", "cutlass", "cublas")),
    ("sampling and logits", ("sampl", "topk", "top_k", "argmax", "softmax", "exponential")),
    ("torch elementwise and copies", ("elementwise", "copy", "fill", "index", "gather")),
)
GPU_CATEGORIES = {"kernel": "kernel", "gpu_memcpy": "memcpy", "gpu_memset": "memset"}


class ProfileError(ValueError):
    """The trace cannot say where the GPU's time went."""


def kind_of(name: str, category: str) -> str:
    if category != "kernel":
        return "memcpy / memset"
    lowered = name.lower()
    for kind, needles in KINDS:
        if any(needle in lowered for needle in needles):
            return kind
    return "other"


def load_trace(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        document = json.load(handle)
    events = document["traceEvents"] if isinstance(document, dict) else document
    return [e for e in events if e.get("ph") == "X" and e.get("cat") in GPU_CATEGORIES]


def busy_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals (streams overlap)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end <= reach:
            continue
        total += end - max(start, reach)
        reach = end
    return total


def summarize(events: list[dict[str, Any]], layers: int, top: int = 30) -> dict[str, Any]:
    if not any(e["cat"] == "kernel" for e in events):
        raise ProfileError(
            "the trace holds no GPU kernels: the profiler recorded no CUDA activity "
            "(was --profiler-config's profiler 'torch', on a CUDA device?)"
        )
    intervals = [(float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))) for e in events]
    span = max(end for _, end in intervals) - min(start for start, _ in intervals)
    busy = busy_us(intervals)
    kinds: dict[str, dict[str, float]] = defaultdict(lambda: {"us": 0.0, "launches": 0})
    names: dict[str, dict[str, Any]] = {}
    for event in events:
        name = str(event.get("name", "?"))
        kind = kind_of(name, event["cat"])
        duration = float(event.get("dur", 0))
        kinds[kind]["us"] += duration
        kinds[kind]["launches"] += 1
        row = names.setdefault(name, {"kind": kind, "us": 0.0, "launches": 0})
        row["us"] += duration
        row["launches"] += 1
    kernel_us = sum(k["us"] for k in kinds.values())
    summary = {
        "span_ms": span / 1000.0,
        "gpu_busy_share": busy / span if span else 0.0,
        "host_gap_share": 1.0 - busy / span if span else 0.0,
        "kernel_ms": kernel_us / 1000.0,
        "kinds": {
            kind: {"share_of_gpu_time": row["us"] / kernel_us, "launches": int(row["launches"])}
            for kind, row in sorted(kinds.items(), key=lambda item: -item[1]["us"])
        },
        "top_kernels": [
            {
                "name": name[:200],
                "kind": row["kind"],
                "share_of_gpu_time": row["us"] / kernel_us,
                "launches": row["launches"],
                "mean_us": row["us"] / row["launches"],
            }
            for name, row in sorted(names.items(), key=lambda item: -item[1]["us"])[:top]
        ],
    }
    return per_step(summary, layers)


def per_step(summary: dict[str, Any], layers: int) -> dict[str, Any]:
    """Steps in the trace and each kind's milliseconds a step. A step runs the main attention
    kernel (the attention kernel with the most time) once per layer; FlashAttention 3 also
    launches a split-KV combine and a scheduling kernel in some steps, so all attention launches
    over-count (a stock trace: 1,950 launches for 30 steps of 32 layers). A trace without an
    attention kernel among its top kernels has no steps to count: they, and every per-step
    figure, are None (the shares stand)."""
    main = next((k for k in summary["top_kernels"] if k["kind"] == "attention"), None)
    steps = main["launches"] / layers if main and layers > 0 else None
    summary["steps"] = steps
    summary["step_ms"] = summary["span_ms"] / steps if steps else None
    for row in summary["kinds"].values():
        ms = row["share_of_gpu_time"] * summary["kernel_ms"]
        row["ms_per_step"] = ms / steps if steps else None
    return summary


def _ms(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(summary: dict[str, Any], title: str) -> str:
    lines = [
        f"# {title}",
        "",
        f"Profiled span {summary['span_ms']:.0f} ms, "
        + (
            f"{summary['steps']:.1f} steps (main attention kernel's launches / layers), "
            f"{summary['step_ms']:.1f} ms a step; "
            if summary["steps"]
            else "steps unknown (no attention kernel in the trace to count them by); "
        )
        + f"the GPU busy {summary['gpu_busy_share']:.1%} of the span "
        f"(host gaps {summary['host_gap_share']:.1%}).",
        "",
        "| kind | share of GPU time | ms a step | launches |",
        "|---|---|---|---|",
    ]
    for kind, row in summary["kinds"].items():
        lines.append(
            f"| {kind} | {row['share_of_gpu_time']:.1%} | {_ms(row['ms_per_step'], 2)} "
            f"| {row['launches']:,} |"
        )
    lines += ["", "| kernel | kind | share | launches | mean µs |", "|---|---|---|---|---|"]
    for row in summary["top_kernels"]:
        name = row["name"].replace("|", "\\|")
        lines.append(
            f"| `{name[:120]}` | {row['kind']} | {row['share_of_gpu_time']:.1%} "
            f"| {row['launches']:,} | {row['mean_us']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", type=Path, help="the trace, or with --summary a kernels.json")
    parser.add_argument(
        "--summary",
        action="store_true",
        help="re-derive the steps and per-step times of a kernels.json this wrote",
    )
    parser.add_argument("--layers", type=int, required=True, help="decoder layers of the model")
    parser.add_argument("--out", type=Path, required=True, help="folder for kernels.json/.md")
    parser.add_argument("--title", default="GPU time of a serving step, by kernel kind")
    args = parser.parse_args()
    if args.summary:
        summary = per_step(json.loads(args.trace.read_text()), args.layers)
    else:
        summary = summarize(load_trace(args.trace), args.layers)
        summary["trace"] = args.trace.name
    title = summary.setdefault("title", args.title)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "kernels.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "kernels.md").write_text(markdown(summary, title))
    print(markdown(summary, title))


if __name__ == "__main__":
    main()
