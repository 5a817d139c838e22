"""CLI: `leanrag-benchmark --plan plan.json --target URL --out DIR` (python -m workloads.benchmark).

Exit codes: 0 the gate passes, 1 it fails, 2 nothing could be measured (endpoint down, no
successful requests, GuideLLM failed).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from workloads.benchmark.gate import COULD_NOT_MEASURE, Verdict, evaluate, targets_from_plan
from workloads.benchmark.metrics import LevelMetrics, parse_report
from workloads.benchmark.publish import PublishError, in_cluster, publish_configmap
from workloads.benchmark.report import compare, write_report
from workloads.benchmark.runner import (
    EndpointDown,
    check_endpoint,
    load_levels,
    run_scenario,
    scenarios,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leanrag-benchmark", description=__doc__)
    parser.add_argument("--plan", type=Path, required=True, help="plan.json from `leanrag plan`")
    parser.add_argument("--target", required=True, help="optimized endpoint, e.g. http://host:8000")
    parser.add_argument("--baseline-target", help="stock vLLM endpoint for before/after")
    parser.add_argument("--seconds", type=int, default=60, help="duration of each load level")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="*",
        help="load levels (default: 1/4, 1/2 and all of the planned concurrency)",
    )
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument(
        "--from-report", type=Path, help="evaluate an existing GuideLLM JSON instead of running"
    )
    parser.add_argument("--tokenizer", help="local tokenizer folder (default: the model name)")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="accept the endpoint's self-signed certificate (in-cluster vLLM)",
    )
    parser.add_argument(
        "--publish-configmap",
        metavar="NAME",
        help="in a cluster: write the result to this ConfigMap",
    )
    args = parser.parse_args(argv)

    plan = json.loads(args.plan.read_text())
    targets = targets_from_plan(plan)
    levels = tuple(args.concurrency) if args.concurrency else load_levels(targets.concurrency)
    context = {
        "target": args.target,
        "model": "",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "guidellm_version": metadata.version("guidellm"),
        "command": "leanrag-benchmark " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "random_weights": plan.get("model", {}).get("random_weights", False),
        "stack": plan.get("stack"),
    }
    runs: dict[str, dict[str, list[LevelMetrics]]] = {}
    try:
        if args.from_report:
            runs["optimized"] = {"rag": parse_report(json.loads(args.from_report.read_text()))}
        else:
            endpoints = {"optimized": args.target}
            if args.baseline_target:
                endpoints["baseline"] = args.baseline_target
            for label, target in endpoints.items():
                model = check_endpoint(target, insecure=args.insecure)
                if label == "optimized":
                    context["model"] = model
                runs[label] = {
                    scenario.name: run_scenario(
                        target,
                        scenario,
                        args.seconds,
                        args.out,
                        label,
                        args.insecure,
                        args.tokenizer,
                    )[1]
                    for scenario in scenarios(targets, levels)
                }
    except EndpointDown as error:
        verdict = Verdict(COULD_NOT_MEASURE, str(error), (), None)
        document = write_report(args.out, verdict, targets, runs, None, context)
        print(f"gate: could not measure — {error}", file=sys.stderr)
        return _publish(args.publish_configmap, document, verdict.exit_code)

    verdict = evaluate(runs["optimized"]["rag"], targets)
    comparison = None
    if "baseline" in runs:
        comparison = compare(verdict, evaluate(runs["baseline"]["rag"], targets))
    document = write_report(args.out, verdict, targets, runs, comparison, context)
    print(f"gate: {verdict.status} — {verdict.reason}; report in {args.out}/gate.md")
    for check in verdict.checks:
        print(
            f"  {'pass' if check.passed else 'FAIL'}  {check.name}: {check.measured:.3f} "
            f"(target {check.target})"
        )
    return _publish(args.publish_configmap, document, verdict.exit_code)


def _publish(configmap: str | None, document: dict, exit_code: int) -> int:
    """Publish the result where the cluster and `leanrag gate` read it; keep the verdict."""
    if configmap:
        try:
            api_url, namespace, token, context = in_cluster()
            publish_configmap(configmap, document, api_url, namespace, token, context)
        except (PublishError, KeyError, OSError) as error:
            print(f"gate: result not published: {error}", file=sys.stderr)
            return max(exit_code, 2)
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
