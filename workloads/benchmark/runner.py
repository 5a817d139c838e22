"""Run GuideLLM with the plan's traffic: count-bounded load levels and a goodput search.

Each load level runs until enough requests complete (at least `min_measured_requests` and four
times its concurrency), with a warm-up and a cool-down of at least one wave each left out of
the window the gate places from the requests' timings (window.py), and is bounded in time by
the plan's predicted end-to-end latency so a broken server cannot hang the Job. The capacity
at the SLO is searched one such level at a time (search.py).
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workloads.benchmark.metrics import (
    TIMELINE_COLUMNS,
    LevelMetrics,
    parse_report,
    request_timeline,
    trim_report,
)
from workloads.benchmark.window import rewindow
from workloads.contract import (
    STARTUP_ALLOWANCE_S,
    TRANSIENT_SHARE,
    GatePlan,
    LevelBound,
)


class EndpointDown(Exception):
    """The server did not answer, so nothing can be measured (exit code 2)."""


@dataclass(frozen=True)
class Scenario:
    """One traffic shape the plan describes, as GuideLLM is asked to send it."""

    name: str
    prompt_tokens: int  # GuideLLM's synthetic prompt (after the shared prefix, if any)
    output_tokens: int
    prefix_tokens: int
    # What the server must count per prompt: the plan's prompt length, chat template included.
    planned_prompt_tokens: int


def scenarios(targets: GatePlan, template_tokens: int = 0) -> list[Scenario]:
    """The RAG shape (retrieved context in every prompt) and, when the workload has one, the
    shared-document shape (one long prefix that every request repeats). `template_tokens` —
    what the served model's chat template adds to every request — comes off the synthetic
    prompt, so the server sees the plan's prompt length."""
    planned = targets.prompt_tokens
    found = [Scenario("rag", max(planned - template_tokens, 1), targets.output_tokens, 0, planned)]
    if targets.shared_prefix_tokens:
        question = max(planned - targets.shared_prefix_tokens - template_tokens, 16)
        found.append(
            Scenario("shared-document", question, targets.output_tokens,
                     targets.shared_prefix_tokens, planned)
        )  # fmt: skip
    return found


def chat_template_tokens(tokenizer: str | None) -> int:
    """Tokens the tokenizer's chat template wraps around one user message (0 without a local
    tokenizer: the shape check then sees the difference)."""
    if not tokenizer:
        return 0
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(tokenizer)
    if not getattr(loaded, "chat_template", None):
        return 0
    ids = loaded.apply_chat_template(
        [{"role": "user", "content": ""}], add_generation_prompt=True, tokenize=True
    )
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    return len(ids)


def load_levels(concurrency: int) -> tuple[int, ...]:
    """The planned concurrency; the goodput search adds the levels around the capacity."""
    return (max(1, concurrency),)


def check_endpoint(target: str, timeout_s: float = 10.0, insecure: bool = False) -> str:
    """The served model's name, or EndpointDown with the reason."""
    # In-cluster vLLM behind LLMInferenceService presents a self-signed certificate.
    context = ssl._create_unverified_context() if insecure else None
    try:
        url = f"{target.rstrip('/')}/v1/models"
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as reply:
            models = json.load(reply)["data"]
    except (urllib.error.URLError, OSError, ValueError, KeyError) as error:
        raise EndpointDown(f"{target} did not answer /v1/models: {error}") from None
    if not models:
        raise EndpointDown(f"{target} serves no model")
    return models[0]["id"]


def probe_chat(target: str, model: str, timeout_s: float = 120.0, insecure: bool = False) -> None:
    """One one-token chat completion, the kind of request every level sends: a server that
    refuses them (a model without a chat template answers 400) is named with its own answer
    before a level's worth of requests errors (EndpointDown)."""
    context = ssl._create_unverified_context() if insecure else None
    body = {"model": model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
    request = urllib.request.Request(
        f"{target.rstrip('/')}/v1/chat/completions", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as reply:
            answer = json.load(reply)
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:300]
        raise EndpointDown(
            f"{target} refused a chat completion (what every level sends): HTTP {error.code}: "
            f"{detail}"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise EndpointDown(f"{target} did not answer a chat completion: {error}") from None
    if not isinstance(answer, dict) or not answer.get("choices"):
        raise EndpointDown(f"{target} answered a chat completion without choices: {answer!r:.200}")


PREFIX_CACHE_COUNTERS = ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total")


# vLLM's own time to first token: stamped by its API server when a request's first token
# reaches it, counted per bucket bound (cumulative).
TTFT_BUCKETS = "vllm:time_to_first_token_seconds_bucket"
_LE = re.compile(r'le="([^"]+)"')


def metric_totals(text: str, names: Collection[str]) -> dict[str, float]:
    """The named series' samples in one /metrics text (Prometheus), each summed over every
    label set (engines, API server processes) but a histogram bucket's bound: keyed `name`,
    or `name:bound` for a `_bucket` series (`bucket_key`). NaN samples and what the text
    lacks are left out."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name not in names:
            continue
        key = name
        if name.endswith("_bucket") and (bound := _LE.search(line)) is not None:
            key = bucket_key(name, float(bound.group(1)))
        value = float(line.rsplit(" ", 1)[1])
        if not math.isnan(value):
            totals[key] = totals.get(key, 0.0) + value
    return totals


def bucket_key(bucket_series: str, bound_s: float) -> str:
    return f"{bucket_series}:{bound_s!r}"


def vllm_metric_totals(text: str) -> dict[str, float]:
    """vLLM's prefix-cache counters and its TTFT histogram's buckets (`ttft_bucket_key`), the
    gate's readings of one /metrics text (`metric_totals`)."""
    return metric_totals(text, (*PREFIX_CACHE_COUNTERS, TTFT_BUCKETS))


def ttft_bucket_key(bound_s: float) -> str:
    return bucket_key(TTFT_BUCKETS, bound_s)


def ttft_buckets(
    before: dict[str, float], after: dict[str, float]
) -> tuple[tuple[float, float], ...]:
    """First tokens vLLM stamped at or under each finite bucket bound between two readings,
    by bound; empty when the readings lack the histogram (vLLM's metrics off)."""
    prefix = f"{TTFT_BUCKETS}:"
    bounds = sorted(
        float(key[len(prefix) :]) for key in after if key.startswith(prefix) and key in before
    )
    return tuple(
        (bound, after[ttft_bucket_key(bound)] - before[ttft_bucket_key(bound)]) for bound in bounds
    )


def hit_share(before: dict[str, float], after: dict[str, float]) -> float | None:
    """Prompt tokens the prefix cache served over those it looked up between two readings;
    None when nothing was looked up or a reading lacks a counter."""
    if any(name not in reading for reading in (before, after) for name in PREFIX_CACHE_COUNTERS):
        return None
    queries, hits = (after[name] - before[name] for name in PREFIX_CACHE_COUNTERS)
    return hits / queries if queries > 0 else None


def prefix_cache_counts(
    urls: list[str],
    timeout_s: float = 10.0,
    insecure: bool = False,
    named_by: dict[str, str] | None = None,
) -> dict[str, float]:
    """vLLM's prefix-cache counters so far, summed over the replicas' /metrics `urls`.
    EndpointDown when one does not answer or is not vLLM's, naming the option that led to it
    (`named_by`: URL → option; --metrics-url unless told)."""
    context = ssl._create_unverified_context() if insecure else None
    totals = dict.fromkeys(PREFIX_CACHE_COUNTERS, 0.0)
    for url in urls:
        option = (named_by or {}).get(url, "--metrics-url")
        try:
            with urllib.request.urlopen(url, timeout=timeout_s, context=context) as reply:
                found = vllm_metric_totals(reply.read().decode())
        except (urllib.error.URLError, OSError) as error:
            raise EndpointDown(f"{url} did not answer ({option}): {error}") from None
        if missing := set(PREFIX_CACHE_COUNTERS) - set(found):
            lead = "must name each" if option == "--metrics-url" else "must lead to each"
            raise EndpointDown(
                f"{url} carries no {', '.join(sorted(missing))}: {option} {lead} "
                "replica's vLLM /metrics (vLLM ≥ 0.10)"
            )
        for name, value in found.items():
            totals[name] = totals.get(name, 0.0) + value
    return totals


Resolver = Callable[..., list[Any]]
# How replica_urls resolves a Service's name unless told (tests stand a cluster's DNS in).
RESOLVER: Resolver = socket.getaddrinfo


def replica_urls(service_url: str, resolve: Resolver | None = None) -> list[str]:
    """One /metrics URL per replica behind a headless Service: every address the URL's host
    resolves to (a headless Service's name resolves to its ready pods), same scheme, port and
    path. EndpointDown when the name does not resolve or resolves to nothing."""
    parts = urllib.parse.urlsplit(service_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = (resolve or RESOLVER)(parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise EndpointDown(
            f"{service_url}: {parts.hostname} does not resolve (--metrics-service): {error}"
        ) from None
    addresses = sorted({str(info[4][0]) for info in found})
    if not addresses:
        raise EndpointDown(f"{service_url}: no replica behind {parts.hostname} is ready")
    return [
        urllib.parse.urlunsplit((parts.scheme, f"[{a}]:{port}" if ":" in a else f"{a}:{port}",
                                 parts.path or "/metrics", parts.query, ""))
        for a in addresses
    ]  # fmt: skip


def metered(
    measure: Callable[[], Run],
    urls: list[str] | None,
    insecure: bool = False,
    services: list[str] | None = None,
) -> Run:
    """`measure()`'s run, with the share of its prompt tokens vLLM's prefix cache served (the
    counters at `urls` read before and after it); as it was when no `urls` are given.
    `services` are headless Services' /metrics URLs, each read at every replica it resolves to
    before the run (`replica_urls`): a replica that goes away during the run fails the second
    reading (EndpointDown), one that joins is not read (the share is then the read replicas')."""
    resolved = {u: "--metrics-service" for service in services or []
                for u in replica_urls(service)}  # fmt: skip
    every = [*(urls or []), *resolved]
    if not every:
        return measure()
    before = prefix_cache_counts(every, insecure=insecure, named_by=resolved)
    run = measure()
    after = prefix_cache_counts(every, insecure=insecure, named_by=resolved)
    return replace(
        run,
        prefix_cache_hit_share=hit_share(before, after),
        server_ttft_buckets=ttft_buckets(before, after),
    )


def _transient(bounded_by: str) -> dict[str, Any]:
    return {"percent": TRANSIENT_SHARE, "mode": "duration" if bounded_by == "seconds" else
            "requests"}  # fmt: skip


def _constraints(bounds: list[LevelBound]) -> list[dict[str, Any]]:
    """Per-benchmark lists: GuideLLM applies the k-th value to its k-th benchmark."""
    constraints: list[dict[str, Any]] = [
        {"kind": "max_duration", "seconds": [b.time_limit_s for b in bounds]}
    ]
    if all(b.total_requests for b in bounds):
        constraints.insert(0, {"kind": "max_requests", "count": [b.total_requests for b in bounds]})
    return constraints


def fresh_seed(seed: int | None = None) -> dict[str, Any]:
    """GuideLLM's seed field for one run: `seed`, or a fresh random one (see scenario_spec)."""
    return {"kind": "static", "value": seed if seed is not None else secrets.randbelow(2**31)}


def scenario_spec(
    target: str,
    scenario: Scenario,
    profile: dict[str, Any],
    bounds: list[LevelBound],
    output: Path,
    targets: GatePlan,
    insecure: bool = False,
    tokenizer: str | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """A GuideLLM 0.8 scenario file: the plan's traffic, the profile, its bounds, the SLO.

    GuideLLM draws its synthetic prompts from one seed (42 unless told): every run would send
    the same prompts, and a server that kept the last run's in its prefix cache (the local
    stack's speed probe, a capacity search's earlier probe) would serve this one's from it —
    33 % of the local gate's "uncached" prompt tokens were. Each scenario file gets a seed of
    its own (`seed`, or a fresh random one), written into it so the run can be replayed."""
    data: dict[str, Any] = {
        "kind": "synthetic_text",
        "prompt_tokens": scenario.prompt_tokens,
        "output_tokens": scenario.output_tokens,
    }
    if scenario.prefix_tokens:
        data |= {"prefix_tokens": scenario.prefix_tokens, "prefix_count": 1}
    backend: dict[str, Any] = {"kind": "openai_http", "target": target}
    if insecure:
        backend["verify"] = False
    bounded_by = bounds[0].bounded_by
    spec: dict[str, Any] = {
        "backend": backend,
        "profile": profile | {"warmup": _transient(bounded_by),
                              "cooldown": _transient(bounded_by)},
        "data": [data],
        "constraints": _constraints(bounds),
        # Goodput = requests within every latency objective; ITL compares per request, as the
        # gate's ITL p95 does (GuideLLM's inter_token_latency_ms distribution is per request).
        "metrics": {"kind": "generative",
                    "slo": {"ttft_ms": targets.ttft_p95_ms, "tpot_ms": targets.itl_p95_ms}},
        "outputs": [{"kind": "json", "path": str(output)}],
        "seed": fresh_seed(seed),
    }  # fmt: skip
    if tokenizer:
        # Token counts need the served model's tokenizer: a local folder keeps air-gapped
        # runs off the hub (by default GuideLLM looks it up by the served model name).
        spec["tokenizer"] = {"kind": "huggingface_auto", "model": tokenizer}
    return {"metadata": {"name": f"leanrag-{scenario.name}"}, "spec": spec}


def levels_profile(concurrencies: tuple[int, ...]) -> dict[str, Any]:
    return {"kind": "concurrent", "streams": list(concurrencies)}


def guidellm_command(scenario_file: Path) -> list[str]:
    executable = shutil.which("guidellm") or str(Path(sys.executable).parent / "guidellm")
    return [executable, "run", "--scenario", str(scenario_file), "--disable-progress"]


def _run_bounded(command: list[str], limit_s: float) -> subprocess.CompletedProcess[str] | None:
    """Run to completion, or kill the whole process group after `limit_s` and return None."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        return None
    return subprocess.CompletedProcess(command, process.returncode, output, "")


@dataclass(frozen=True)
class Run:
    """One GuideLLM invocation (or several joined: a capacity search's probes): its files, how
    each benchmark was bounded, what it measured."""

    name: str
    reports: tuple[Path, ...]  # GuideLLM's raw reports, as it wrote them
    bounds: tuple[LevelBound, ...]
    levels: tuple[LevelMetrics, ...]
    # Prompt tokens vLLM's prefix cache served over those it looked up during the run, from
    # its /metrics (`--metrics-url`); None where the gate was not given them.
    prefix_cache_hit_share: float | None = None
    # First tokens vLLM's API server had at or under each of its TTFT histogram's bounds
    # during the run (same readings), summed over the replicas read: (bound s, count) pairs.
    server_ttft_buckets: tuple[tuple[float, float], ...] = ()
    # Every successful request's TTFT at the client (s), warm-up included, in report order:
    # what vLLM's histogram above is set against (report.first_token_path). Not written into
    # gate.json: the trimmed reports keep each request's row.
    client_ttfts_s: tuple[float, ...] = field(default=(), metadata={"in_report": False})
    # When GuideLLM started sending its first level (Unix s), from its reports: the time a
    # report judged after the fact was measured, not judged. None where a report has none.
    started_at: float | None = field(default=None, metadata={"in_report": False})


def joined(name: str, runs: list[Run]) -> Run:
    """Several GuideLLM runs (a capacity search's probes) as one, in the order they ran."""
    return Run(
        name,
        tuple(path for run in runs for path in run.reports),
        tuple(bound for run in runs for bound in run.bounds),
        tuple(level for run in runs for level in run.levels),
        server_ttft_buckets=_summed_buckets([run.server_ttft_buckets for run in runs]),
        client_ttfts_s=tuple(t for run in runs for t in run.client_ttfts_s),
        started_at=min((run.started_at for run in runs if run.started_at), default=None),
    )


def _summed_buckets(
    each: list[tuple[tuple[float, float], ...]],
) -> tuple[tuple[float, float], ...]:
    """Runs' TTFT histograms added bound by bound; none unless every run has one, on the
    same bounds (a run that was not metered leaves the joined requests uncounted)."""
    bounds = {tuple(bound for bound, _ in buckets) for buckets in each}
    if len(bounds) != 1 or not next(iter(bounds)):
        return ()
    return tuple(
        (bucket[0][0], sum(count for _, count in bucket)) for bucket in zip(*each, strict=True)
    )


def run_guidellm(
    name: str,
    spec: dict[str, Any],
    bounds: list[LevelBound],
    out_dir: Path,
) -> Run:
    """Run one scenario file; return its parsed benchmarks (EndpointDown when it failed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = Path(spec["spec"]["outputs"][0]["path"])
    scenario_file = out_dir / f"{name}.scenario.json"
    scenario_file.write_text(json.dumps(spec, indent=2) + "\n")
    log = out_dir / f"{name}.log"
    # GuideLLM 0.8.1 has been seen to hang after a finished run (its main loop idle, waiting on
    # a worker). Bound it by its levels' own limits, kill its process group, retry once.
    limit_s = sum(b.time_limit_s for b in bounds) + STARTUP_ALLOWANCE_S
    completed = None
    for _ in range(2):
        raw.unlink(missing_ok=True)
        completed = _run_bounded(guidellm_command(scenario_file), limit_s)
        if completed is not None:
            break
        if raw.is_file():  # the report was written before the hang: the run is complete
            completed = subprocess.CompletedProcess([], 0, "killed after its report", "")
            break
    if completed is None:
        raise EndpointDown(f"guidellm did not finish within {limit_s:.0f} s, twice; see {log}")
    log.write_text(completed.stdout + completed.stderr)
    if completed.returncode != 0 or not raw.is_file():
        raise EndpointDown(f"guidellm failed ({completed.returncode}); see {log}")
    # GuideLLM's raw report stays as it wrote it; what the gate judges is each count-bounded
    # level recompiled over its steady window (window.py says why).
    report = rewindow(json.loads(raw.read_text()))
    levels = tuple(parse_report(report))
    # The raw report carries every request's samples (tens of MB at prod's shape); a trimmed
    # copy keeps every summary the gate reads, small enough to bring back from a GPU machine.
    trimmed = raw.with_name(f"{raw.stem}-trimmed.json")
    trimmed.write_text(json.dumps(trim_report(report), indent=1) + "\n")
    ttfts = client_ttfts_s(report)
    return Run(name, (raw,), tuple(bounds[: len(levels)]), levels, client_ttfts_s=ttfts,
               started_at=report_started_at(report))  # fmt: skip


def report_started_at(report: dict[str, Any]) -> float | None:
    """When a GuideLLM report's first benchmark started its requests (Unix s), or None."""
    starts = [
        start
        for benchmark in report.get("benchmarks", ())
        if isinstance(start := (benchmark.get("scheduler_state") or {}).get("start_time"), float)
    ]
    return min(starts, default=None)


def client_ttfts_s(report: dict[str, Any]) -> tuple[float, ...]:
    """Every successful request's TTFT (s) in a GuideLLM report, raw (its samples) or as the
    gate trims it (`leanrag_requests`), warm-up and cool-down included."""
    column = TIMELINE_COLUMNS.index("ttft_ms")
    return tuple(
        row[column] / 1e3
        for benchmark in report["benchmarks"]
        for row in (benchmark.get("leanrag_requests") or request_timeline(benchmark) or {}).get(
            "rows", ()
        )
    )
