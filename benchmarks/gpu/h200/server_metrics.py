"""Where a request's time went, by vLLM's own histograms, over one gate level.

`benchmarks/gpu/h200/gate.sh` saves vLLM's /metrics before and after each gate run; the
difference of each histogram is what that run's requests (warm-up and cool-down included)
spent: waiting in the scheduler's queue, being prefilled, decoding, and the server-side TTFT
(from the API server's arrival to the first token). Set against the gate's client-side TTFT,
it says whether a long TTFT is queueing in the engine, prefill work, or outside the engine.

    python -m benchmarks.gpu.h200.server_metrics RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from workloads.contract import target_runs

HISTOGRAMS = {
    "queue_s": "vllm:request_queue_time_seconds",
    "prefill_s": "vllm:request_prefill_time_seconds",
    "decode_s": "vllm:request_decode_time_seconds",
    "server_ttft_s": "vllm:time_to_first_token_seconds",
    "server_e2e_s": "vllm:e2e_request_latency_seconds",
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([0-9.eE+-]+|NaN)$")
_LE = re.compile(r'le="([^"]+)"')


def parse(text: str) -> dict[tuple[str, str], float]:
    """Prometheus text exposition → {(metric name, label string): value}."""
    samples = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line.strip())
        if match and match.group(3) != "NaN":
            samples[(match.group(1), match.group(2) or "")] = float(match.group(3))
    return samples


def _quantile(buckets: list[tuple[float, float]], count: float, share: float) -> float:
    """Upper bound of the bucket holding the `share` quantile (buckets: cumulative deltas)."""
    for upper, cumulative in buckets:
        if cumulative >= share * count:
            return upper
    return float("inf")


def histogram_delta(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], name: str
) -> dict[str, float] | None:
    def delta(key: tuple[str, str]) -> float:
        return after.get(key, 0.0) - before.get(key, 0.0)

    counts = [k for k in after if k[0] == f"{name}_count"]
    if not counts:
        return None
    count = sum(delta(k) for k in counts)
    total = sum(delta(k) for k in after if k[0] == f"{name}_sum")
    if count <= 0:
        return None
    buckets = sorted(
        (float(_LE.search(labels).group(1)), delta((metric, labels)))  # type: ignore[union-attr]
        for metric, labels in after
        if metric == f"{name}_bucket"
    )
    return {
        "count": count,
        "mean": total / count,
        "p50_at_most": _quantile(buckets, count, 0.5),
        "p95_at_most": _quantile(buckets, count, 0.95),
    }


def summarize(run: Path) -> dict[str, Any]:
    before = parse((run / "metrics-before.txt").read_text())
    after = parse((run / "metrics-after.txt").read_text())
    server = {key: histogram_delta(before, after, name) for key, name in HISTOGRAMS.items()}
    gate = json.loads((run / "gate.json").read_text())
    levels = [level for scenario in target_runs(gate).values() for level in scenario["levels"]]
    return {
        "run": run.name,
        "server": server,
        "client": [
            {
                "concurrency": level["concurrency"],
                "ttft_ms": level["ttft_ms"],
                "itl_ms": level["itl_ms"],
                "requests_per_s": level["requests_per_s"],
            }
            for level in levels
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    for run in parser.parse_args().runs:
        summary = summarize(run)
        means = {k: round(v["mean"] * 1e3) if v else None for k, v in summary["server"].items()}
        client = summary["client"][0] if summary["client"] else {}
        print(
            f"{summary['run']}: server mean ms {means}; client TTFT p50/p95 "
            f"{client.get('ttft_ms', {}).get('p50', 0):.0f}/"
            f"{client.get('ttft_ms', {}).get('p95', 0):.0f} ms"
        )


if __name__ == "__main__":
    main()
