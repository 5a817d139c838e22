"""benchmarks/results/overload.{md,png} from overload.json.

python -m benchmarks.overload.report
"""

from __future__ import annotations

import json
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.overload.run import RESULTS


def cache_line(modes: dict[str, Any]) -> str:
    """What vLLM's prefix cache served of the open-loop levels' prompt tokens, or why unread."""
    if all("prefix_cache_hit_share" in data for data in modes.values()):
        shares = ", ".join(f"{m} {d['prefix_cache_hit_share']:.1%}" for m, d in modes.items())
        return (
            "Prompt tokens served from vLLM's prefix cache over the three open-loop levels "
            f"(each GuideLLM run draws its own prompts; above 1 % nothing is written): {shares}."
        )
    return (
        "**Caveat: the unbounded server's 1× level is partly cached.** This run predates the "
        "prefix-cache check: GuideLLM then drew every run's prompts from seed 42, so that level "
        "re-sent the capacity level's prompts to the server that had just cached them (its "
        "TTFT is understated; 2× and 3× drew other prompts, and the admission server had run "
        "nothing before). Two re-runs on 2026-12-04 afternoon were refused: the machine's vLLM "
        "ran 35-39 req/s at 35 streams (21.8 here), and GuideLLM on one core sent 89 of 118 "
        "and 95 of 106 req/s at 3× (the second passed the cache check on both servers)."
    )


def main() -> int:
    result = json.loads((RESULTS / "overload.json").read_text())
    capacity = result["capacity"]
    slo = result["slo"]
    admission = result["admission"]
    modes = result["modes"]
    lines = [
        "# Overload with and without vLLM's admission control (local stack, CPU)",
        "",
        f"Measured {result['measured_at']} on {result['machine']}; server: {result['server']}.",
        f"Traffic: {result['traffic']}. SLO: TTFT p95 ≤ {slo['ttft_p95_ms']:g} ms, "
        f"ITL p95 ≤ {slo['itl_p95_ms']:g} ms.",
        "",
        f"Capacity (closed loop, {capacity['concurrency']} streams — the plan's capacity at the "
        f"SLO): **{capacity['admitted_rps']} req/s**, TTFT p95 {capacity['ttft_p95_ms']} ms, "
        f"ITL p95 {capacity['itl_p95_ms']} ms. The levels below offer 1×, 2× and 3× that rate "
        "open-loop for the same time each.",
        "",
        f"Admission limits (the plan's): `--max-num-queued-reqs {admission['max_num_queued_reqs']}`"
        f", `--max-num-queued-tokens {admission['max_num_queued_tokens']}`.",
        "",
        "| vLLM queue | offered | offered req/s | admitted | admitted req/s | rejected/failed "
        "| TTFT p50 / p95 ms (admitted) | ITL p95 ms | queue max |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    figure, (ax_ttft, ax_queue) = plt.subplots(1, 2, figsize=(11, 4))
    for mode, data in result["modes"].items():
        queue_max = max((w for _, w, _ in data["queue"]), default=0)
        for level in data["levels"]:
            lines.append(
                f"| {mode} | {level['multiple']}× | {level['offered_rps']} | {level['admitted']} "
                f"| {level['admitted_rps']} | {level['errored']} | {level['ttft_p50_ms']} / "
                f"{level['ttft_p95_ms']} | {level['itl_p95_ms']} | {queue_max:g} |"
            )
        multiples = [lv["multiple"] for lv in data["levels"]]
        ttfts = [lv["ttft_p95_ms"] for lv in data["levels"]]
        ax_ttft.plot(multiples, ttfts, marker="o", label=mode)
        ax_queue.plot([t for t, _, _ in data["queue"]], [w for _, w, _ in data["queue"]],
                      label=mode)  # fmt: skip
    lines += [
        "",
        f"HTTP 503 in the server logs: unbounded {modes['unbounded']['rejected_http_503']}, "
        f'admission {modes["admission"]["rejected_http_503"]}. "queue max" is vLLM\'s '
        "`num_requests_waiting`, sampled every 0.5 s over all three levels.",
        "",
        cache_line(modes),
        "",
        "![overload](overload.png)",
        "",
        f"Reproduce: `{result['command']}` then `python -m benchmarks.overload.report`.",
    ]
    ax_ttft.axhline(slo["ttft_p95_ms"], color="grey", linestyle="--", label="TTFT target")
    ax_ttft.set(xlabel="offered load (× capacity)", ylabel="TTFT p95 of admitted (ms)",
                yscale="log", title="TTFT of admitted requests")  # fmt: skip
    ax_queue.set(xlabel="seconds (1×, 2×, 3× one after another)", ylabel="requests waiting",
                 title="vLLM waiting queue")  # fmt: skip
    for axis in (ax_ttft, ax_queue):
        axis.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "overload.png", dpi=100)
    (RESULTS / "overload.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
