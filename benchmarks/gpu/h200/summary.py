"""Before/after on one H200, from the product's gate reports committed under
`benchmarks/results/gpu_h200_gate/`: capacity at the SLO per GPU, optimized vs stock vLLM, at
prod's RAG shape (6,400 / 384 tokens) and at 2048/256, with cost per request and per 1M
output tokens, the spread of repeated runs, today's model's prediction next to each measured
level, and a plot.

    .venv/bin/python -m benchmarks.gpu.h200.summary

writes `benchmarks/results/gpu_h200_summary.{json,md,png}` (the README's performance table is
this file's). It reads only committed reports: nothing here measures. A report whose traffic
is not the plan's (prompt/output tokens) is an error; a level that is not a steady state — fewer
than four waves measured, fewer than 90 % of its streams in flight, or time-bounded
(`--seconds`) with a warm-up shorter than one request, so that the first wave's burst fell
inside its window (today's gate refuses such a window before sending load) — is listed as
refused and counted nowhere.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.catalog import ACCELERATORS, MODEL_PRESETS
from infra.load_model import simulate
from infra.sizing import ServingKnobs, Workload
from workloads.benchmark.runner import hit_share, vllm_metric_totals
from workloads.contract import (
    APPLIED_LOAD_TOLERANCE,
    CACHE_HIT_SLACK,
    TRANSIENT_SHARE,
    WAVES_MEASURED,
    target_runs,
)

# The device scripts (serve.sh, gate.sh, session.sh …) live beside this file.
SCRIPTS = Path(__file__).resolve().parent
RESULTS = SCRIPTS.parents[1] / "results"
GATE = RESULTS / "gpu_h200_gate"
TTFT_TARGET_MS, ITL_TARGET_MS = 2000.0, 50.0
# prod's stack price per GPU-hour (stacks/Pulumi.prod.yaml `leanrag:cost`), as the plans state.
SHAPES = {
    "rag": {"prompt": 6400, "output": 384, "workload": Workload(256, 256, 6144, 384, 0.0)},
    "chat": {"prompt": 2048, "output": 256, "workload": Workload(256, 256, 1792, 256, 0.0)},
}
# (shape, profile, report, server arguments) — the committed gate runs of the rag scenario from
# before runs described themselves (`discovered`).
RUNS = [
    ("rag", "optimized", "gate-c16-32-64.json", "server-h200-423.args"),
    ("rag", "optimized", "gate-c96.json", "server-h200-423.args"),
    ("rag", "optimized", "gate-c112.json", "server-h200-423.args"),
    ("rag", "optimized", "planned-optimized-c86.json", "server-rag-optimized.args"),
    ("rag", "optimized", "prod-shape-repeats/opt86-r1/gate.json",
     "prod-shape-repeats/server-rag-optimized.args"),
    ("rag", "optimized", "prod-shape-repeats/opt86-r2/gate.json",
     "prod-shape-repeats/server-rag-optimized.args"),
    ("rag", "optimized (8192-token steps)", "prod-shape-repeats/lever8192-c112/gate.json",
     "prod-shape-repeats/server-lever8192.args"),
    ("rag", "stock", "stock-c58.json", "server-rag-stock.args"),
    ("rag", "stock", "prod-shape-repeats/stock58-r1/gate.json",
     "prod-shape-repeats/server-rag-stock.args"),
    ("rag", "stock", "prod-shape-repeats/stock66-r1/gate.json",
     "prod-shape-repeats/server-rag-stock.args"),
    ("rag", "stock", "prod-shape-repeats/stock74-r1/gate.json",
     "prod-shape-repeats/server-rag-stock.args"),
    ("rag", "stock", "prod-shape-repeats/stock74-r2/gate.json",
     "prod-shape-repeats/server-rag-stock.args"),
    ("chat", "optimized", "chat/optimized-c256.json", "chat/server-chat-optimized.args"),
    ("chat", "stock", "chat/stock-c112.json", "chat/server-chat-stock.args"),
    ("chat", "stock", "chat/stock-c140.json", "chat/server-chat-stock.args"),
]  # fmt: skip


@dataclass(frozen=True)
class Level:
    shape: str
    profile: str
    report: str
    server: str
    concurrency: int
    requests_per_s: float
    ttft_p50_ms: float
    ttft_p95_ms: float
    itl_p95_ms: float
    in_flight: float | None
    measured_requests: int
    cost_per_hour_usd: float
    measured_on: str  # the report's date (UTC)
    refused: str | None  # why this level is not a steady state; None: it is one

    @property
    def meets_slo(self) -> bool:
        return self.ttft_p95_ms <= TTFT_TARGET_MS and self.itl_p95_ms <= ITL_TARGET_MS


class NotThePlansTraffic(ValueError):
    """A report whose measured traffic is not the traffic it was meant to measure."""


def knobs_of(args_file: Path) -> ServingKnobs:
    words = args_file.read_text().split()
    flag = {words[i]: words[i + 1] for i in range(len(words) - 1) if words[i].startswith("--")}
    return ServingKnobs(
        quantization=flag.get("--quantization", "none"),
        kv_cache_dtype=flag["--kv-cache-dtype"],
        gpu_memory_utilization=float(flag["--gpu-memory-utilization"]),
        tensor_parallel_size=int(flag["--tensor-parallel-size"]),
        max_model_len=int(flag["--max-model-len"]),
        max_num_batched_tokens=int(flag["--max-num-batched-tokens"]),
        max_num_seqs=int(flag["--max-num-seqs"]),
        enable_prefix_caching="--enable-prefix-caching" in words,
        enable_chunked_prefill="--enable-chunked-prefill" in words,
    )


def not_steady(level: dict[str, Any], bound: dict[str, Any], output: int) -> str | None:
    if level["measured_requests"] < WAVES_MEASURED * level["concurrency"]:
        return f"{level['measured_requests']} requests measured, fewer than four waves"
    in_flight = level.get("in_flight_mean")
    if in_flight is not None and in_flight < (1 - APPLIED_LOAD_TOLERANCE) * level["concurrency"]:
        return f"{in_flight:.1f} of {level['concurrency']} streams in flight"
    if bound["bounded_by"] == "seconds":
        request_s = (level["ttft_ms"]["p50"] + (output - 1) * level["itl_ms"]["p50"]) / 1e3
        warmup_s = TRANSIENT_SHARE * bound["time_limit_s"]
        if warmup_s < request_s:
            return (f"--seconds {bound['time_limit_s']:.0f}: warm-up {warmup_s:.1f} s, shorter "
                    f"than one request ({request_s:.1f} s)")  # fmt: skip
    return None


def discovered(gate: Path = GATE) -> list[tuple[str, str, str, str]]:
    """Runs that describe themselves: gate.sh (since 2026-12-03) copies the plan and the
    server's arguments beside each report, so a committed run folder needs no RUNS line."""
    listed = {report for _, _, report, _ in RUNS}
    runs = []
    for report in sorted(gate.rglob("gate.json")):
        plan, server = report.parent / "plan.json", report.parent / "server.args"
        name = report.relative_to(gate).as_posix()
        if name in listed or not (plan.is_file() and server.is_file()):
            continue
        document = json.loads(plan.read_text())
        prompt = document["gate"]["prompt_tokens"]
        shape = next((s for s, v in SHAPES.items() if v["prompt"] == prompt), None)
        if shape is None:
            raise NotThePlansTraffic(f"{name}: its plan's {prompt} prompt tokens are no shape here")
        profile = document["profile"]
        if (variant := report.parent / "variant").is_file():
            profile += f" ({variant.read_text().strip()})"
        runs.append((shape, profile, name, server.relative_to(gate).as_posix()))
    return runs


def prefix_cache_hit_share(run_dir: Path) -> float | None:
    """Prompt tokens vLLM's prefix cache served over those it looked up during the run, from
    /metrics read before and after it (gate.sh, since 2026-12-03); None without both."""
    files = [run_dir / "metrics-before.txt", run_dir / "metrics-after.txt"]
    if not all(f.is_file() for f in files):
        return None
    before, after = (vllm_metric_totals(f.read_text()) for f in files)
    return hit_share(before, after)


def not_the_plans_traffic(
    report: str, level: dict[str, Any], expected: tuple[int, int], tolerance: float
) -> str | None:
    """The gate's own shape rule: token means, and where the report keeps them (since
    2026-12-04) each request's 1st and 99th percentile, within the tolerance of the plan's."""
    names = ("prompt", "output")
    for name, meant in zip(names, expected, strict=True):
        measured = [level[f"{name}_tokens_mean"], *level.get(f"{name}_tokens_range", ())]
        if any(abs(m - meant) > tolerance * meant for m in measured):
            return f"{report}: {name} tokens {measured}, meant {meant} (±{tolerance:.0%})"
    return None


def levels(gate: Path = GATE) -> Iterator[Level]:
    for shape, profile, report, server in RUNS + discovered(gate):
        document = json.loads((gate / report).read_text())
        cost = document["targets"]["cost_per_hour_usd"]
        runs = target_runs(document)
        rag = runs["rag"]
        bounds = {b["concurrency"]: b for b in rag["bounds"]}
        # A run of the rag scenario alone: its server's prefix cache must have served none of it,
        # or its rate is a cached one, not the uncached capacity the plan states.
        share = prefix_cache_hit_share((gate / report).parent)
        if set(runs) == {"rag"} and share is not None and share > CACHE_HIT_SLACK:
            raise NotThePlansTraffic(
                f"{report}: vLLM's prefix cache served {share:.1%} of its prompt tokens; the "
                f"rag scenario is uncached traffic (at most {CACHE_HIT_SLACK:.0%})"
            )
        tolerance = document["targets"]["shape_tolerance"]
        # The gate's capacity search probes are count-bounded levels of the same traffic.
        search = (document.get("searches") or {}).get(document.get("profile", "optimized"))
        if search:
            bounds |= {b["concurrency"]: b for b in search["bounds"]}
        for level in [*rag["levels"], *(search or {}).get("levels", ())]:
            expected = (SHAPES[shape]["prompt"], SHAPES[shape]["output"])
            if problem := not_the_plans_traffic(report, level, expected, tolerance):
                raise NotThePlansTraffic(problem)
            yield Level(shape, profile, report, server, level["concurrency"],
                        level["requests_per_s"], level["ttft_ms"]["p50"],
                        level["ttft_ms"]["p95"], level["itl_ms"]["p95"],
                        level.get("in_flight_mean"), level["measured_requests"], cost,
                        document["measured_at"][:10],
                        not_steady(level, bounds[level["concurrency"]], expected[1]))  # fmt: skip


def predicted(level: Level, gate: Path = GATE) -> dict[str, float]:
    point = simulate(
        MODEL_PRESETS["llama-3.1-8b-instruct"].architecture,
        ACCELERATORS["H200"],
        knobs_of(gate / level.server),
        SHAPES[level.shape]["workload"],
        level.concurrency,
    )
    return {"requests_per_s": point.requests_per_s, "ttft_p95_ms": point.ttft_p95_ms,
            "itl_p95_ms": point.itl_p95_ms}  # fmt: skip


def costs(requests_per_s: float, output_tokens: int, per_hour: float) -> dict[str, float]:
    per_s = per_hour / 3600
    return {
        "usd_per_1k_requests": per_s / requests_per_s * 1e3,
        "usd_per_1m_output_tokens": per_s / (requests_per_s * output_tokens) * 1e6,
    }


def capacity(measured: list[Level], shape: str, profile: str) -> dict[str, Any]:
    """The highest measured level within both targets in at least one run, every steady-state
    run of that level (a level met in some runs and missed in others is the boundary itself,
    and says so: `runs_met` < `runs`), their spread, and the lowest level every run missed
    above it (the capacity lies between)."""
    mine = [lv for lv in measured if lv.shape == shape and lv.profile == profile
            and lv.refused is None]  # fmt: skip
    passing = [lv for lv in mine if lv.meets_slo]
    if not passing:
        return {"shape": shape, "profile": profile, "streams_within_slo": None, "runs": 0,
                "runs_met": 0}  # fmt: skip
    top = max(lv.concurrency for lv in passing)
    runs = [lv for lv in mine if lv.concurrency == top]
    rates = [lv.requests_per_s for lv in runs]
    missed = sorted(lv.concurrency for lv in mine if not lv.meets_slo and lv.concurrency > top)
    mean = statistics.fmean(rates)
    return {
        "shape": shape,
        "profile": profile,
        "streams_within_slo": top,
        "first_level_missing_slo": missed[0] if missed else None,
        "runs": len(runs),
        "runs_met": sum(1 for lv in runs if lv.meets_slo),
        "requests_per_s": mean,
        "requests_per_s_min": min(rates),
        "requests_per_s_max": max(rates),
        **costs(mean, SHAPES[shape]["output"], runs[0].cost_per_hour_usd),
    }


def plan_vs_gate(measured: list[Level], found: dict[str, Any], gate: Path = GATE) -> dict | None:
    """What the plan beside a profile's runs promised (its capacity at the SLO and its planned
    load) against what its gate measured: the capacity level's runs, and every run at the
    planned load. None where the runs carry no plan (written before gate.sh filed it)."""
    mine = [lv for lv in measured if lv.shape == found["shape"]
            and lv.profile == found["profile"] and lv.refused is None]  # fmt: skip
    top = [lv for lv in mine if lv.concurrency == found["streams_within_slo"]]
    plans = [gate / Path(lv.report).parent / "plan.json" for lv in top]
    documents = [json.loads(p.read_text())["gate"] for p in plans if p.is_file()]
    if not documents or not found["runs"]:
        return None
    promised = documents[-1]
    planned = [lv for lv in mine if lv.concurrency == promised["concurrency"]]
    ratio = found["requests_per_s"] / promised["capacity_requests_per_s"]
    return {
        "predicted_capacity_requests_per_s": promised["capacity_requests_per_s"],
        "predicted_capacity_streams": promised["capacity_concurrency"],
        "measured_capacity_requests_per_s": found["requests_per_s"],
        "measured_over_predicted": ratio,
        "tolerance": promised["capacity_tolerance"],
        "within_tolerance": abs(ratio - 1) <= promised["capacity_tolerance"],
        "planned_streams": promised["concurrency"],
        "planned_runs": len(planned),
        "planned_runs_met": sum(1 for lv in planned if lv.meets_slo),
        "planned_requests_per_s": [lv.requests_per_s for lv in planned],
    }


def summarize(gate: Path = GATE) -> dict[str, Any]:
    measured = list(levels(gate))
    rows = [
        {**lv.__dict__, "meets_slo": lv.meets_slo, "predicted": predicted(lv, gate)}
        for lv in measured
    ]
    profiles = sorted({lv.profile for lv in measured})
    capacities = [
        c
        for s in SHAPES
        for p in profiles
        if (c := capacity(measured, s, p))["runs"] or p in ("optimized", "stock")
    ]
    for c in capacities:
        c["plan_vs_gate"] = plan_vs_gate(measured, c, gate)
    ratios: dict[str, float | None] = {}
    for shape in SHAPES:
        ours, stock = (next(c for c in capacities if (c["shape"], c["profile"]) == (shape, p))
                       for p in ("optimized", "stock"))  # fmt: skip
        ratios[shape] = (ours["requests_per_s"] / stock["requests_per_s"]
                         if ours["runs"] and stock["runs"] else None)  # fmt: skip
    return {"levels": rows, "capacity": capacities, "optimized_over_stock": ratios}


def markdown(summary: dict[str, Any]) -> str:
    days = sorted({r["measured_on"] for r in summary["levels"]})
    when = days[0] if len(days) == 1 else f"{days[0]} to {days[-1]}"
    lines = [
        "# One H200: capacity at the SLO, optimized vs stock vLLM (the product's gate)",
        "",
        "Generated by `.venv/bin/python -m benchmarks.gpu.h200.summary` from the gate reports",
        f"under `gpu_h200_gate/` (measured {when}, vLLM 0.25.1, GuideLLM 0.8.1,",
        "Llama-3.1-8B architecture with random weights, one replica; SLO: TTFT p95 ≤ 2 s and",
        "ITL p95 ≤ 50 ms). Cost at the plans' $/GPU-hour.",
        "",
        "| shape | profile | capacity at the SLO (streams) | first level over | runs | req/s "
        "(min-max) | $ / 1k requests | $ / 1M output tokens |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in summary["capacity"]:
        if not c["runs"]:
            lines.append(f"| {c['shape']} | {c['profile']} | no steady-state level measured "
                         "| | 0 | | | |")  # fmt: skip
            continue
        over = c["first_level_missing_slo"] or "not measured"
        within = (f"≥ {c['streams_within_slo']}" if c["runs_met"] == c["runs"] else
                  f"{c['streams_within_slo']} (the boundary: met in {c['runs_met']} of "
                  f"{c['runs']} runs)")  # fmt: skip
        lines.append(
            f"| {c['shape']} | {c['profile']} | {within} | {over} | "
            f"{c['runs']} | {c['requests_per_s']:.2f} ({c['requests_per_s_min']:.2f}-"
            f"{c['requests_per_s_max']:.2f}) | {c['usd_per_1k_requests']:.3f} | "
            f"{c['usd_per_1m_output_tokens']:.2f} |"
        )
    lines += [
        "",
        "The plan against its own gate (the plan filed beside the runs: its predicted capacity",
        "at the SLO, which the gate checks within the plan's tolerance, and its planned load):",
        "",
        "| shape | profile | predicted capacity | measured (runs at that level) | measured / "
        "predicted | at the planned load |",
        "|---|---|---|---|---|---|",
    ]
    for c in summary["capacity"]:
        if not (v := c.get("plan_vs_gate")):
            continue
        planned = (f"met in {v['planned_runs_met']} of {v['planned_runs']} runs ("
                   + ", ".join(f"{r:.2f}" for r in v["planned_requests_per_s"]) + " req/s)"
                   if v["planned_runs"] else "not run")  # fmt: skip
        lines.append(
            f"| {c['shape']} | {c['profile']} | {v['predicted_capacity_requests_per_s']:.2f} "
            f"req/s at {v['predicted_capacity_streams']} streams | "
            f"{v['measured_capacity_requests_per_s']:.2f} req/s at {c['streams_within_slo']} "
            f"streams ({c['runs_met']} of {c['runs']} met; "
            f"{c['first_level_missing_slo'] or 'no level'} over missed) | "
            f"{v['measured_over_predicted'] - 1:+.1%} "
            f"({'within' if v['within_tolerance'] else 'outside'} ±{v['tolerance']:.0%}) | "
            f"{v['planned_streams']} streams: {planned} |"
        )
    ratio = {k: f"**{v:.2f}×**" if v else "not measured (no steady-state stock level)"
             for k, v in summary["optimized_over_stock"].items()}  # fmt: skip
    lines += [
        "",
        f"Optimized over stock at the SLO, per GPU: {ratio['rag']} at prod's shape, "
        f"{ratio['chat']} at 2048/256 (req/s of the highest steady-state level each kept both "
        "targets at, in at least one run; every run of that level counts).",
        "",
        "Every level, with today's model (`infra/load_model.py`) beside it:",
        "",
        "| shape | profile | report | streams | in flight | req/s (model) | TTFT p50 / p95 ms "
        "(model p95) | ITL p95 ms (model) | SLO | steady state |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["levels"]:
        p = r["predicted"]
        flight = f"{r['in_flight']:.1f}" if r["in_flight"] is not None else "—"
        lines.append(
            f"| {r['shape']} | {r['profile']} | `{r['report']}` | {r['concurrency']} | "
            f"{flight} | {r['requests_per_s']:.2f} ({p['requests_per_s']:.2f}) | "
            f"{r['ttft_p50_ms']:.0f} / {r['ttft_p95_ms']:.0f} ({p['ttft_p95_ms']:.0f}) | "
            f"{r['itl_p95_ms']:.1f} ({p['itl_p95_ms']:.1f}) | "
            f"{'met' if r['meets_slo'] else 'missed'} | "
            f"{'refused: ' + r['refused'] if r['refused'] else 'yes'} |"
        )
    lines += ["", "![capacity](gpu_h200_summary.png)", ""]
    return "\n".join(lines)


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    rows = [r for r in summary["levels"] if r["shape"] == "rag"]
    for r in rows:
        r["label"] = r["profile"] + (" (refused: not steady)" if r["refused"] else "")
    for profile in sorted({r["label"] for r in rows}):
        mine = sorted((r for r in rows if r["label"] == profile),
                      key=lambda r: r["concurrency"])  # fmt: skip
        xs = [r["concurrency"] for r in mine]
        for axis, key in zip(axes, ("requests_per_s", "ttft_p95_ms", "itl_p95_ms"), strict=True):
            axis.plot(xs, [r[key] for r in mine], marker="o", linestyle="", label=profile)
    axes[1].axhline(TTFT_TARGET_MS, color="grey", linestyle="--", linewidth=0.8)
    axes[2].axhline(ITL_TARGET_MS, color="grey", linestyle="--", linewidth=0.8)
    for axis, title in zip(axes, ("req/s", "TTFT p95 (ms)", "ITL p95 (ms)"), strict=True):
        axis.set_title(f"{title} — one H200, 6,400 / 384 tokens")
        axis.set_xlabel("streams (requests in flight)")
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def out_path(doc: str | None, name: str) -> Path:
    """`--out` of a script that writes `benchmarks/results/NAME.{json,md}` (the default)."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / name)
    return parser.parse_args().out


def write_results(out: Path, result: Any, text: str) -> None:
    """A derived result beside its table: OUT.json and OUT.md."""
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(text)


def main() -> None:
    out = out_path(__doc__, "gpu_h200_summary")
    summary = summarize()
    write_results(out, summary, markdown(summary))
    plot(summary, out.with_suffix(".png"))
    print(markdown(summary).split("Every level")[0])


if __name__ == "__main__":
    main()
