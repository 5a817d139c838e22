"""Summarize the GPU proof runs (benchmarks/gpu/proof.sh output) into the committed results:
benchmarks/results/gpu_proof.{json,md,png}.

    python benchmarks/gpu/proof_report.py RUN_DIR [RUN_DIR ...] --command "..."
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"
TTFT_TARGET_MS, ITL_TARGET_MS = 2000, 50  # the prod stack's SLOs (stacks/Pulumi.prod.yaml)


def load(folders: list[Path]) -> dict:
    before_after, hol, shared, device = [], {}, {}, ""
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
            hol[path.stem.removeprefix("hol-")] = json.loads(path.read_text())
        for path in sorted(folder.glob("shared-*.json")):
            shared[path.stem.removeprefix("shared-")] = json.loads(path.read_text())
        if (folder / "device.txt").exists():
            device = (folder / "device.txt").read_text().strip().replace("\n", "; ")
    return {"before_after": before_after, "head_of_line": hol, "shared_document": shared,
            "device": device}  # fmt: skip


def ratios(rows: list[dict]) -> list[dict]:
    by = {(r["profile"], r["concurrency"]): r for r in rows}
    out = []
    for (profile, c), row in sorted(by.items()):
        stock = by.get(("stock", c))
        if profile == "optimized" and stock:
            out.append({
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
    lines += ["", "| concurrency | goodput ratio | throughput ratio |", "| --- | --- | --- |"]
    lines += [f"| {r['concurrency']} | {r['goodput_ratio']}× | {r['throughput_ratio']}× |"
              for r in data["ratios"]]  # fmt: skip
    lines += ["", "## 2. Head-of-line: 8 chat streams while a 100k-token document arrives", "",
              "| prefill | worst chat gap during the document (s) | worst gap before (s) | "
              "document TTFT (s) |", "| --- | --- | --- | --- |"]  # fmt: skip
    for label, r in data["head_of_line"].items():
        lines.append(
            f"| {label} | {r['worst_gap_during_document_s']} | "
            f"{r['worst_gap_before_document_s']} | {r['document_ttft_s']} |"
        )
    lines += ["", "## 3. Shared document: 50 users, one 32k-token document", "",
              "| prefix caching | cold TTFT (s) | TTFT p50 (s) | TTFT p95 (s) | req/s |",
              "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for label, r in data["shared_document"].items():
        lines.append(
            f"| {label} | {r['cold_ttft_s']} | {r['ttft_p50_s']} | {r['ttft_p95_s']} | "
            f"{r['requests_per_s']} |"
        )
    lines += ["", "![goodput](gpu_proof.png)", ""]
    return "\n".join(lines)


def plot(data: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for profile in ("stock", "optimized"):
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
    print((RESULTS / "gpu_proof.md").read_text())


if __name__ == "__main__":
    main()
