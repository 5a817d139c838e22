"""Summarize the GPU proof runs (benchmarks/gpu/proof.sh output) into the committed results:
benchmarks/results/gpu_proof.{json,md,png}.

    python benchmarks/gpu/proof_report.py RUN_DIR [RUN_DIR ...] --command "..."
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
# The head-of-line plot: the one-step freeze, a large step, and the plan's step without and
# with the stack's vLLM plugin (other runs are in the table).
HOL_PLOT = ("one-step", "chunked-2560", "chunked-256-bpe", "chunked-256-bpe-plugin")
TTFT_TARGET_MS, ITL_TARGET_MS = 2000, 50  # the prod stack's SLOs (stacks/Pulumi.prod.yaml)


def load(folders: list[Path]) -> dict:
    before_after, hol, hol_end, shared, device = [], {}, {}, {}, ""
    for folder in folders:
        for path in sorted(folder.glob("before-after-*.json")):
            r = json.loads(path.read_text())
            label, concurrency = path.stem.removeprefix("before-after-").rsplit("-c", 1)
            before_after.append({
                "profile": label,
                "concurrency": int(concurrency),
                "requests_per_s": round(r["request_throughput"], 3),
                "goodput_requests_per_s": round(r.get("request_goodput", 0.0), 3),
                "output_tokens_per_s": round(r["output_throughput"], 1),
                "ttft_p95_ms": round(r["p95_ttft_ms"], 1),
                "tpot_p95_ms": round(r["p95_tpot_ms"], 2),
                "itl_p95_ms": round(r["p95_itl_ms"], 2),
                "completed": r["completed"],
            })  # fmt: skip
        for path in sorted(folder.glob("hol-*.json")):
            run = json.loads(path.read_text())
            if path.stem.startswith("hol-end-"):
                hol_end[path.stem.removeprefix("hol-end-")] = run
            else:
                hol[path.stem.removeprefix("hol-")] = {**run, **late_steps(run)}
        for path in sorted(folder.glob("shared-*.json")):
            shared[path.stem.removeprefix("shared-")] = json.loads(path.read_text())
        if (folder / "device.txt").exists():
            device = (folder / "device.txt").read_text().strip().replace("\n", "; ")
    return {"before_after": before_after, "head_of_line": hol, "head_of_line_end": hol_end,
            "shared_document": shared, "device": device}  # fmt: skip


def late_steps(run: dict) -> dict:
    """The document's late prefill steps, seen from chat stream 0: the median gap over the last
    tenth of the prefill, up to its first token (those chunks attend to ~90-100 % of the
    document; the median ignores the one stall at that token); and what the sizing model
    predicts for the last chunk."""
    timeline = run.get("timeline_stream0")
    step = run.get("step_tokens")
    if not timeline or not step or step >= run["document_tokens"]:
        return {}
    from infra.catalog import ACCELERATORS, MODEL_PRESETS
    from infra.sizing import compute_seconds

    end = run["document_ttft_s"]
    late = sorted(g for t, g in timeline if 0.9 * end <= t < end and g > 0.001)
    predicted = compute_seconds(
        MODEL_PRESETS["llama-3.1-8b-instruct"].architecture,
        ACCELERATORS["H100-80GB"],
        "fp8",
        1,
        step,
        run["document_tokens"],
    )
    return {
        "late_chunk_step_s": round(late[len(late) // 2], 4) if late else None,
        "predicted_last_chunk_step_s": round(predicted, 4),
    }


def ratios(rows: list[dict]) -> list[dict]:
    """Every tuned profile (optimized, optimized-plugin, ...) against stock at each concurrency."""
    by = {(r["profile"], r["concurrency"]): r for r in rows}
    out = []
    for (profile, c), row in sorted(by.items()):
        stock = by.get(("stock", c))
        if profile != "stock" and stock:
            out.append({
                "profile": profile,
                "concurrency": c,
                "goodput_ratio": round(row["goodput_requests_per_s"]
                                       / max(stock["goodput_requests_per_s"], 1e-9), 2),
                "throughput_ratio": round(row["requests_per_s"] / stock["requests_per_s"], 2),
            })  # fmt: skip
    return out


def markdown(data: dict, command: str) -> str:
    lines = [
        "# GPU proof: the plan's vLLM profile vs stock vLLM",
        "",
        f"- device: {data['device']}",
        "- model: Llama-3.1-8B architecture, random weights (`--load-format dummy`: real speed "
        "and memory)",
        f"- SLOs (prod stack): TTFT p95 ≤ {TTFT_TARGET_MS} ms, ITL ≤ {ITL_TARGET_MS} ms; goodput "
        "= requests/s whose own TTFT and time per output token meet both (vLLM bench `--goodput`)",
        f"- command: `{command}`",
        "",
        "## 1. Before/after on the RAG shape (2048 tokens in / 256 out)",
        "",
        "| profile | concurrency | req/s | goodput req/s | TTFT p95 ms | TPOT p95 ms "
        "| ITL p95 ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in sorted(data["before_after"], key=lambda r: (r["concurrency"], r["profile"])):
        lines.append(
            f"| {r['profile']} | {r['concurrency']} | {r['requests_per_s']} | "
            f"{r['goodput_requests_per_s']} | {r['ttft_p95_ms']} | {r['tpot_p95_ms']} | "
            f"{r['itl_p95_ms']} |"
        )
    lines += ["", "| profile vs stock | concurrency | goodput ratio | throughput ratio |",
              "| --- | --- | --- | --- |"]  # fmt: skip
    lines += [f"| {r['profile']} | {r['concurrency']} | {r['goodput_ratio']}× | "
              f"{r['throughput_ratio']}× |" for r in data["ratios"]]  # fmt: skip
    lines += ["", "## 2. Head-of-line: 8 chat streams while a 100k-token document arrives", "",
              "Step = `--max-num-batched-tokens`; one-step = a budget as large as the context; "
              "`-bpe`: a byte-level BPE tokenizer like Llama 3's; `-plugin`: the stack's vLLM "
              "plugin loaded (detokenizer primed with the prompt's tail). "
              "Late chunk step: chat stream 0's median gap over the last tenth of the prefill "
              "(those chunks attend to ~100k tokens), next to the sizing model's last-chunk step.",
              "", "| prefill | worst gap during the document (s) | worst gap began (s after "
              "sent) | gap p99 (s) | late chunk step: measured / predicted (s) | document "
              "TTFT (s) | steady gap before (s) |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for label, r in sorted(data["head_of_line"].items(), key=lambda kv: _step(kv[0])):
        late = (f"{r['late_chunk_step_s']} / {r['predicted_last_chunk_step_s']}"
                if r.get("late_chunk_step_s") else "–")  # fmt: skip
        lines.append(
            f"| {label} | {r['worst_gap_during_document_s']} | "
            f"{r.get('worst_gap_began_after_sent_s', '–')} | "
            f"{r.get('gap_p99_during_document_s', '–')} | {late} | {r['document_ttft_s']} | "
            f"{r.get('gap_p50_before_document_s', '–')} |"
        )
    if data.get("head_of_line_end"):
        lines += ["", "### The worst gap on fresh documents (256-token steps; `-bpe-plugin`: "
                  "BPE tokenizer, the stack's vLLM plugin)", "",
                  "| run | document asks for | worst gap (s) | began (s after sent) | "
                  "document TTFT (s) | gap p99 (s) |",
                  "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
        for label, r in data["head_of_line_end"].items():
            lines.append(
                f"| {label} | {r['document_output_tokens']} tokens | "
                f"{r['worst_gap_during_document_s']} | {r['worst_gap_began_after_sent_s']} | "
                f"{r['document_ttft_s']} | {r['gap_p99_during_document_s']} |"
            )
    lines += ["", "![head-of-line](gpu_proof_hol.png)"]
    lines += ["", "## 3. Shared document: 50 users, one 32k-token document", "",
              "| run | cold TTFT (s) | lone warm TTFT (s) | burst TTFT p50 (s) | "
              "burst TTFT p95 (s) | req/s |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for label, r in data["shared_document"].items():
        warm = r.get("lone_warm_ttft_s")
        lines.append(
            f"| {label} | {r['cold_ttft_s']} | "
            f"{sorted(warm)[len(warm) // 2] if warm else '–'} | {r['ttft_p50_s']} | "
            f"{r['ttft_p95_s']} | {r['requests_per_s']} |"
        )
    lines += ["", "![goodput](gpu_proof.png)", ""]
    return "\n".join(lines)


def _step(label: str) -> tuple[int, str]:
    """Table order: by step size (one-step last), then label."""
    match = re.match(r"chunked-(\d+)", label)
    return (int(match.group(1)) if match else 1 << 30, label)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for profile in sorted({r["profile"] for r in data["before_after"]}):
        rows = sorted((r for r in data["before_after"] if r["profile"] == profile),
                      key=lambda r: r["concurrency"])  # fmt: skip
        xs = [r["concurrency"] for r in rows]
        axes[0].plot(xs, [r["goodput_requests_per_s"] for r in rows], marker="o", label=profile)
        axes[1].plot(xs, [r["requests_per_s"] for r in rows], marker="o", label=profile)
    axes[0].set_title("goodput (req/s meeting TTFT and ITL targets)")
    axes[1].set_title("throughput (req/s)")
    for axis in axes:
        axis.set_xlabel("concurrency")
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_head_of_line(data: dict, path: Path) -> None:
    """Chat stream 0's inter-token gaps while the document prefills, one line per step size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(10, 4))
    runs = {k: v for k, v in data["head_of_line"].items() if k in HOL_PLOT}
    for label, run in sorted(runs.items(), key=lambda kv: _step(kv[0])):
        timeline = [(t, g) for t, g in run.get("timeline_stream0", []) if g > 0.001]
        if timeline:
            axis.plot([t + g for t, g in timeline], [g for _, g in timeline], marker=".",
                      linewidth=0.8, label=label)  # fmt: skip
    axis.set_yscale("log")
    axis.axhline(0.1, color="grey", linestyle="--", linewidth=0.8, label="0.10 s target")
    axis.set_xlabel("seconds after the 100k-token document was sent")
    axis.set_ylabel("chat stream gap (s)")
    axis.set_title("head-of-line: 8 chat streams while a 100k-token document prefills")
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--command", required=True)
    parser.add_argument("--notes", type=Path, help="Markdown appended to the report")
    args = parser.parse_args()
    data = load(args.runs)
    data["ratios"] = ratios(data["before_after"])
    data["command"] = args.command
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "gpu_proof.json").write_text(json.dumps(data, indent=2) + "\n")
    notes = args.notes.read_text() if args.notes else ""
    (RESULTS / "gpu_proof.md").write_text(markdown(data, args.command) + "\n" + notes)
    plot(data, RESULTS / "gpu_proof.png")
    plot_head_of_line(data, RESULTS / "gpu_proof_hol.png")
    print((RESULTS / "gpu_proof.md").read_text())


if __name__ == "__main__":
    main()
