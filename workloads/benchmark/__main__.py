"""CLI: `leanrag-benchmark --plan plan.json --target URL --out DIR` (python -m workloads.benchmark).

Exit codes: 0 the gate passes, 1 it fails (a latency, throughput or capacity target missed, or
the live quality check: the served model is not the checkpoint the quantize Job measured), 2
nothing could be judged (endpoint down, GuideLLM failed, traffic that did not match the plan,
or too few requests for a steady state).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from workloads.benchmark.gate import (
    COULD_NOT_MEASURE,
    FAIL,
    Check,
    Verdict,
    evaluate,
    run_problems,
    shape_problems,
    steady_state_problem,
    targets_from_plan,
)
from workloads.benchmark.metrics import parse_report
from workloads.benchmark.publish import PublishError, in_cluster, publish_configmap
from workloads.benchmark.quality_check import (
    LiveQuality,
    QualityReferenceError,
    live_quality,
    load_reference,
)
from workloads.benchmark.report import compare, write_report
from workloads.benchmark.runner import (
    EndpointDown,
    Run,
    Scenario,
    chat_template_tokens,
    check_endpoint,
    client_ttfts_s,
    joined,
    levels_profile,
    load_levels,
    metered,
    probe_chat,
    report_started_at,
    run_guidellm,
    scenario_spec,
    scenarios,
)
from workloads.benchmark.search import search_capacity
from workloads.benchmark.window import rewindow
from workloads.contract import (
    PROFILES,
    GatePlan,
    LevelBound,
    WindowTooShort,
    level_bound,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="leanrag-benchmark", description=__doc__)
    parser.add_argument("--plan", type=Path, required=True, help="plan.json from `leanrag plan`")
    parser.add_argument("--target", required=True, help="optimized endpoint, e.g. http://host:8000")
    parser.add_argument("--baseline-target", help="stock vLLM endpoint for before/after")
    parser.add_argument(
        "--seconds",
        type=int,
        help="run each level this long instead of until its steady-state request count",
    )
    parser.add_argument(
        "--concurrency", type=int, nargs="*", help="load levels (default: the planned one)"
    )
    parser.add_argument(
        "--min-requests",
        type=int,
        help="requests each level must measure after warm-up (default: the plan's)",
    )
    parser.add_argument(
        "--one-replica",
        action="store_true",
        help="the target is one replica of the plan's: judge it against its share of the "
        "users, throughput and capacity",
    )
    parser.add_argument(
        "--skip-capacity-search",
        action="store_true",
        help="do not search the capacity at the SLO (the report says it was not measured)",
    )
    parser.add_argument("--out", type=Path, required=True, help="report folder")
    parser.add_argument(
        "--from-report", type=Path, help="judge an existing GuideLLM JSON of load levels"
    )
    parser.add_argument(
        "--from-search",
        type=Path,
        nargs="+",
        help="with --from-report: the capacity search's GuideLLM JSONs (one per probe, in the "
        "order they ran; or one goodput-profile report)",
    )
    parser.add_argument(
        "--speed-probe",
        type=Path,
        metavar="JSON",
        help="only measure the levels (--concurrency) and write their medians here, no verdict",
    )
    parser.add_argument(
        "--quality-reference",
        type=Path,
        metavar="JSON",
        help="the quantize Job's quality-reference.json: replay its held-out passages and "
        "compare the served log-probabilities with the Job's (fails a swapped checkpoint)",
    )
    parser.add_argument("--tokenizer", help="local tokenizer folder (default: the model name)")
    parser.add_argument(
        "--metrics-url",
        nargs="+",
        metavar="URL",
        help="vLLM's /metrics of every replica behind --target: each scenario's prefix-cache "
        "hits are read from them and held to what its prompts share (an uncached run the cache "
        "served, or a shared-document run it did not, is refused)",
    )
    parser.add_argument(
        "--metrics-service",
        nargs="+",
        metavar="URL",
        help="like --metrics-url, for a headless Service in front of the target's replicas: "
        "its name resolves to every ready replica, and each one's /metrics is read (in a "
        "cluster, where --target is a load-balancing Service)",
    )
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
    # What --target serves: the plan's optimized vLLM, or stock vLLM where a plan says so
    # (the device calibration judges stock against its own plan): reports name it.
    label = plan.get("profile", "optimized")
    if label not in PROFILES:
        print(f"gate: the plan's 'profile' is {label!r}: use one of {', '.join(PROFILES)} "
              "(or leave it out: optimized)", file=sys.stderr)  # fmt: skip
        return 2
    targets = targets_from_plan(plan)
    one_replica_of = targets.replicas if args.one_replica else None
    if args.one_replica:
        targets = targets.one_replica()
    if args.min_requests:
        targets = dataclasses.replace(targets, min_measured_requests=args.min_requests)
    levels = tuple(args.concurrency) if args.concurrency else load_levels(targets.concurrency)
    search = not args.skip_capacity_search
    if args.seconds and not args.from_report:
        try:  # refused before any load is sent
            level_bound(targets, max(levels), args.seconds)
        except WindowTooShort as error:
            print(f"gate: {error}", file=sys.stderr)
            return 2
    context = {
        "target": args.target,
        "model": "",
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "guidellm_version": metadata.version("guidellm"),
        "command": "leanrag-benchmark " + shlex.join(argv if argv is not None else sys.argv[1:]),
        "random_weights": plan.get("model", {}).get("random_weights", False),
        "stack": plan.get("stack"),
        "capacity_search": "from report" if args.from_report else search,
        "one_replica_of": one_replica_of,
        "profile": label,
    }
    # Live runs send the plan's prompt length to the server, chat template included.
    template = 0 if args.from_report else chat_template_tokens(args.tokenizer)
    shapes = scenarios(targets, template)
    context["chat_template_tokens"] = template
    if args.speed_probe:
        return _speed_probe(args, targets, levels, shapes[0])
    runs: dict[str, dict[str, Run]] = {}
    searches: dict[str, Run] = {}
    quality: LiveQuality | None = None
    try:
        reference = load_reference(args.quality_reference) if args.quality_reference else None
    except QualityReferenceError as error:
        print(f"gate: {error}", file=sys.stderr)
        return 2
    try:
        if args.from_report:
            runs[label] = {"rag": _from_file(args.from_report, targets)}
            if args.from_search:
                searches[label] = _from_files(args.from_search, targets, f"{label} capacity")
            # Judged now, measured when GuideLLM ran: the report says both.
            started = runs[label]["rag"].started_at
            context["judged_at"] = context["measured_at"]
            context["measured_at"] = (
                datetime.fromtimestamp(started, UTC).isoformat(timespec="seconds")
                if started
                else "at a time its report does not state"
            )
        else:
            endpoints = {label: args.target}
            if args.baseline_target:
                endpoints["baseline"] = args.baseline_target
            for endpoint, target in endpoints.items():
                model = check_endpoint(target, insecure=args.insecure)
                probe_chat(target, model, insecure=args.insecure)
                if endpoint == label:
                    context["model"] = model
                    if reference is not None:
                        quality = live_quality(
                            target, model, reference, targets.quality_tolerance_nats,
                            args.insecure,
                        )  # fmt: skip
                        context["live_quality"] = dataclasses.asdict(quality)
                        if not quality.passed:
                            break  # another model than the measured one: no load needed
                runs[endpoint] = {}
                # The target's replicas are metered (the baseline's cache is not the claim).
                metered = (args.metrics_url or []) if endpoint == label else None
                for shape in shapes:
                    bounds = [level_bound(targets, c, args.seconds) for c in levels]
                    name = f"guidellm-{endpoint}-{shape.name}"
                    spec = scenario_spec(
                        target, shape, levels_profile(levels), bounds,
                        args.out / f"{name}.json", targets, args.insecure, args.tokenizer,
                    )  # fmt: skip
                    runs[endpoint][shape.name] = measured = _measure(
                        target, name, spec, bounds, args, metered
                    )
                    # The verdict judges the RAG run; any other is reported, or refused here.
                    if shape is not shapes[0] and (
                        problems := run_problems(measured, shape, targets, endpoint)
                    ):
                        context.setdefault("unjudged_runs", {})[f"{endpoint} / {shape.name}"] = (
                            problems
                        )
                # Traffic that is not the plan's is refused anyway: do not search with it.
                if search and not shape_problems(runs[endpoint]["rag"], shapes[0], targets):
                    searches[endpoint] = search_capacity(
                        _prober(target, endpoint, shapes[0], targets, args, metered), targets,
                        shapes[0], endpoint,
                    )  # fmt: skip
    except EndpointDown as error:
        verdict = Verdict(COULD_NOT_MEASURE, str(error), (), None)
        document = write_report(args.out, verdict, targets, runs, searches, None, context)
        print(f"gate: could not measure — {error}", file=sys.stderr)
        return _publish(args.publish_configmap, document, verdict.exit_code)

    if quality is not None and not quality.passed:
        verdict = Verdict(FAIL, "failed: " + _quality_reason(quality), _quality_checks(quality),
                          None)  # fmt: skip
    else:
        verdict = evaluate(runs[label]["rag"], targets, shapes[0], searches.get(label), label)
        if quality is not None and verdict.status != COULD_NOT_MEASURE:
            verdict = dataclasses.replace(verdict, checks=verdict.checks + _quality_checks(quality))
    comparison = None
    if "baseline" in runs:
        baseline = evaluate(
            runs["baseline"]["rag"], targets, shapes[0], searches.get("baseline"), "baseline"
        )
        comparison = compare(verdict, baseline)
    document = write_report(args.out, verdict, targets, runs, searches, comparison, context)
    print(f"gate: {verdict.status} — {verdict.reason}; report in {args.out}/gate.md")
    for check in verdict.checks:
        print(
            f"  {'pass' if check.passed else 'FAIL'}  {check.name}: {check.measured:.3f} "
            f"(target {check.target})"
        )
    if verdict.capacity:
        print(f"  {verdict.capacity.describe()}")
    return _publish(args.publish_configmap, document, verdict.exit_code)


def _quality_checks(quality: LiveQuality) -> tuple[Check, ...]:
    return (
        Check("quality_token_count_mismatches", quality.token_count_mismatches, "== 0",
              quality.token_count_mismatches == 0),
        Check("quality_logprob_delta_nats", quality.mean_abs_delta_nats,
              f"<= {quality.tolerance_nats:g}",
              quality.mean_abs_delta_nats <= quality.tolerance_nats),
    )  # fmt: skip


def _quality_reason(quality: LiveQuality) -> str:
    return (
        f"the served model is not the checkpoint the quantize Job measured: on its "
        f"{quality.passages} held-out passages the log-probabilities differ by "
        f"{quality.mean_abs_delta_nats:.3f} nats/token (tolerance {quality.tolerance_nats:g}), "
        f"{quality.token_count_mismatches} passages tokenized to another length, perplexity "
        f"{quality.perplexity_served:.2f} served vs {quality.perplexity_reference:.2f} recorded "
        "— check the served checkpoint, its tokenizer and the KV-cache dtype"
    )


def _measure(
    target: str,
    name: str,
    spec: dict[str, Any],
    bounds: list[LevelBound],
    args: argparse.Namespace,
    metrics_urls: list[str] | None = None,
) -> Run:
    """One GuideLLM run, then the endpoint's health. A server that died during the run is the
    reason given, also when GuideLLM itself failed on the refused connections. With
    `metrics_urls`, the run carries the share of its prompt tokens vLLM's prefix cache served
    (its counters read before and after)."""

    def measure() -> Run:
        try:
            run = run_guidellm(name, spec, bounds, args.out)
        except EndpointDown:
            _still_answering(target, name, args.insecure)
            raise
        _still_answering(target, name, args.insecure)
        return run

    if metrics_urls is None:  # the baseline's runs: not metered
        return measure()
    return metered(measure, metrics_urls, args.insecure, services=args.metrics_service)


def _prober(
    target: str,
    endpoint: str,
    shape: Scenario,
    targets: GatePlan,
    args: argparse.Namespace,
    metrics_urls: list[str] | None = None,
) -> Callable[[int], Run]:
    """One capacity-search probe: a count-bounded level at `streams`, sized for them."""

    def probe(streams: int) -> Run:
        bounds = [level_bound(targets, streams)]
        name = f"guidellm-{endpoint}-capacity-c{streams}"
        spec = scenario_spec(
            target, shape, levels_profile((streams,)), bounds, args.out / f"{name}.json",
            targets, args.insecure, args.tokenizer,
        )  # fmt: skip
        return _measure(target, name, spec, bounds, args, metrics_urls)

    return probe


def _still_answering(target: str, run: str, insecure: bool) -> None:
    """A server that died during a run leaves errored requests that would read as a failing
    deployment: the gate says it could not measure instead, and names the run."""
    try:
        check_endpoint(target, insecure=insecure)
    except EndpointDown as error:
        raise EndpointDown(f"the endpoint stopped answering during {run}: {error}") from None


def _speed_probe(
    args: argparse.Namespace, targets: GatePlan, levels: tuple[int, ...], shape: Scenario
) -> int:
    """Count-bounded levels of the plan's traffic; medians per level for calibration."""
    try:
        check_endpoint(args.target, insecure=args.insecure)
        bounds = [level_bound(targets, c) for c in levels]
        spec = scenario_spec(
            args.target, shape, levels_profile(levels), bounds,
            args.out / "guidellm-speed-probe.json", targets, args.insecure, args.tokenizer,
        )  # fmt: skip
        run = run_guidellm("guidellm-speed-probe", spec, bounds, args.out)
    except EndpointDown as error:
        print(f"speed probe: could not measure — {error}", file=sys.stderr)
        return 2
    problems = shape_problems(run, shape, targets)
    problems += [
        p for level, b in zip(run.levels, run.bounds, strict=True)
        if (p := steady_state_problem(level, b))
    ]  # fmt: skip
    document = {
        "levels": [
            {
                "concurrency": level.concurrency,
                "measured_requests": level.measured_requests,
                "prompt_tokens_mean": level.prompt_tokens_mean,
                "output_tokens_mean": level.output_tokens_mean,
                "ttft_p50_ms": level.ttft_ms.p50,
                "itl_p50_ms": level.itl_ms.p50,
                "requests_per_s": level.requests_per_s,
            }
            for level in run.levels
        ],
        "problems": problems,
        "reports": [str(path) for path in run.reports],
    }
    args.speed_probe.write_text(json.dumps(document, indent=2) + "\n")
    if problems:
        print("speed probe: could not measure — " + "; ".join(problems), file=sys.stderr)
        return 2
    return 0


def _from_files(paths: list[Path], targets: GatePlan, name: str) -> Run:
    """Several GuideLLM reports (a search's probes) judged as one run, in the order given."""
    return joined(name, [_from_file(path, targets) for path in paths])


def _from_file(path: Path, targets: GatePlan) -> Run:
    """A GuideLLM report judged after the fact: each level must still show its steady state
    (a raw report is measured over its steady windows, as the gate does when it runs)."""
    report = rewindow(json.loads(path.read_text()))
    levels = tuple(parse_report(report))
    bounds = tuple(level_bound(targets, level.concurrency or 1) for level in levels)
    return Run(path.stem, (path,), bounds, levels, client_ttfts_s=client_ttfts_s(report),
               started_at=report_started_at(report))  # fmt: skip


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
