"""Overload with and without vLLM's admission control, on the local stack's vLLM CPU server.

Open-loop traffic (GuideLLM `constant` rate: arrivals do not wait for answers, as users do
not) at 1×, 2× and 3× the server's capacity at the SLO, once with vLLM's unbounded queue and
once with the plan's admission limits (`--max-num-queued-reqs`, `--max-num-queued-tokens`).
Per level: TTFT p95 and ITL p95 of the admitted (successful) requests, rejections (HTTP 503
in the server's log), and the waiting queue over time (vLLM's /metrics, every 0.5 s).

The capacity is measured first, on the unbounded server, as the product's gate measures a
level: the plan's capacity concurrency in a closed loop, count-bounded, over the gate's steady
window, refused unless it is the plan's traffic, the load was applied and Little's law holds.
vLLM runs on every core but the last, as the local stack runs it (a load generator sharing
vLLM's spinning cores cannot send on time). Each open-loop level must have sent its offered
rate (within 10 %) of the plan's traffic, or nothing is written: the run exits 2 and says why.

    .venv-workloads/bin/python -m benchmarks.overload.run \
        --model out/local/local/checkpoint-int8-w8a8

(`make local` first builds that checkpoint.) Writes benchmarks/results/overload.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from infra.local import processes
from infra.plan import build_plan
from infra.stack_source import PROJECT_ROOT, load_stack
from workloads.benchmark.gate import prefix_cache_problem, run_problems
from workloads.benchmark.metrics import LevelMetrics, parse_report
from workloads.benchmark.runner import (
    Run,
    chat_template_tokens,
    fresh_seed,
    guidellm_command,
    levels_profile,
    metered,
    run_guidellm,
    scenario_spec,
    scenarios,
)
from workloads.contract import GatePlan, level_bound

RESULTS = PROJECT_ROOT / "benchmarks" / "results"
VLLM_PYTHON = PROJECT_ROOT / ".venv-vllm" / "bin" / "python"
PORT = 8011
METRICS = f"http://127.0.0.1:{PORT}/metrics"
LEVEL_SECONDS = 30
MULTIPLES = (1, 2, 3)
SENT_TOLERANCE = 0.1  # an open-loop level must have sent its offered rate within this


def start_server(args: list[str], env: dict[str, str], log: Path) -> processes.Server:
    command = [*processes.all_cores_but_last(), str(VLLM_PYTHON), "-m",
               "vllm.entrypoints.openai.api_server", *args,
               "--host", "127.0.0.1", "--port", str(PORT)]  # fmt: skip
    server = processes.start("vllm", command, log, env)
    server.wait_until_ready(f"http://127.0.0.1:{PORT}/health", timeout_s=300)
    return server


class QueueSampler(threading.Thread):
    """vLLM's waiting and running requests, every 0.5 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.is_set():
            try:
                text = urllib.request.urlopen(METRICS, timeout=2).read()
                values = {"waiting": 0.0, "running": 0.0}
                for line in text.decode().splitlines():
                    for key in values:
                        if line.startswith(f"vllm:num_requests_{key}"):
                            values[key] += float(line.rsplit(" ", 1)[1])
                self.samples.append((time.monotonic() - start, values["waiting"],
                                     values["running"]))  # fmt: skip
            except OSError:
                pass
            self.stop.wait(0.5)


def guidellm(name: str, profile: dict[str, Any], seconds: list[int], shape: dict[str, int],
             tokenizer: Path, out: Path) -> list[LevelMetrics]:  # fmt: skip
    report = out / f"{name}.json"
    spec = {"metadata": {"name": name}, "spec": {
        "backend": {"kind": "openai_http", "target": f"http://127.0.0.1:{PORT}"},
        "profile": profile,
        "data": [{"kind": "synthetic_text", **shape}],
        "constraints": [{"kind": "max_duration", "seconds": seconds}],
        "outputs": [{"kind": "json", "path": str(report)}],
        "tokenizer": {"kind": "huggingface_auto", "model": str(tokenizer)},
        "seed": fresh_seed(),  # not the prompts an earlier run left in the prefix cache
    }}  # fmt: skip
    scenario = out / f"{name}.scenario.json"
    scenario.write_text(json.dumps(spec, indent=2))
    done = subprocess.run(guidellm_command(scenario), capture_output=True, text=True,
                          timeout=sum(seconds) + 300)  # fmt: skip
    (out / f"{name}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not report.exists():
        raise RuntimeError(f"guidellm {name} failed ({done.returncode}); see {out / name}.log")
    return parse_report(json.loads(report.read_text()))


def open_loop(name: str, profile: dict[str, Any], seconds: list[int], shape: dict[str, int],
              tokenizer: Path, out: Path) -> Run:  # fmt: skip
    """The open-loop levels of one GuideLLM run, as a Run (for the gate's cache check)."""
    return Run(name, (), (), tuple(guidellm(name, profile, seconds, shape, tokenizer, out)))


def capacity_level(streams: int, targets: GatePlan, tokenizer: Path, out: Path) -> LevelMetrics:
    """The closed-loop capacity, measured and refused exactly as the gate measures a level."""
    scenario = scenarios(targets, chat_template_tokens(str(tokenizer)))[0]
    bounds = [level_bound(targets, streams)]
    spec = scenario_spec(f"http://127.0.0.1:{PORT}", scenario, levels_profile((streams,)), bounds,
                         out / "capacity.json", targets, tokenizer=str(tokenizer))  # fmt: skip
    run = metered(lambda: run_guidellm("capacity", spec, bounds, out), [METRICS])
    if problems := run_problems(run, scenario, targets, "unbounded"):
        raise NotMeasured("capacity: " + "; ".join(problems))
    (level,) = run.levels
    return level


class NotMeasured(Exception):
    """A level that did not measure what it meant to: nothing is written."""


def sent_problem(level: LevelMetrics, offered_rps: float, planned_prompt: int,
                 tolerance: float) -> str | None:  # fmt: skip
    """An open-loop level that did not send its offered rate of the plan's traffic."""
    sent = (level.successful + level.errored + level.incomplete) / level.duration_s
    if abs(sent / offered_rps - 1) > SENT_TOLERANCE:
        return (f"sent {sent:.2f} req/s of the {offered_rps:.2f} offered (more than "
                f"±{SENT_TOLERANCE:.0%} off): the load generator could not keep up")  # fmt: skip
    # The mean and each request's (1st-99th percentile), as the gate's shape check holds them.
    spread = level.prompt_tokens_range or ()
    measured = (level.prompt_tokens_mean, *spread)
    if level.successful and any(abs(m / planned_prompt - 1) > tolerance for m in measured):
        per_request = f" (1st-99th percentile {spread[0]:.0f}-{spread[1]:.0f})" if spread else ""
        return (f"measured {level.prompt_tokens_mean:.0f} prompt tokens{per_request}, planned "
                f"{planned_prompt}")  # fmt: skip
    return None


def rejections(log: Path) -> int:
    return log.read_text(errors="replace").count('" 503 ')


def summarize(level: LevelMetrics) -> dict[str, Any]:
    sent = level.successful + level.errored + level.incomplete
    return {
        "offered_rps": None,
        "sent_rps": round(sent / level.duration_s, 3) if level.duration_s else None,
        "admitted": level.successful,
        "errored": level.errored,
        "incomplete": level.incomplete,
        "admitted_rps": round(level.requests_per_s, 3),
        "ttft_p95_ms": round(level.ttft_ms.p95, 1),
        "ttft_p50_ms": round(level.ttft_ms.p50, 1),
        "itl_p95_ms": round(level.itl_ms.p95, 2),
        "prompt_tokens_mean": round(level.prompt_tokens_mean, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the served checkpoint")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "out" / "overload")
    parser.add_argument("--seconds", type=int, default=LEVEL_SECONDS)
    args = parser.parse_args(argv)
    if shutil.which("guidellm") is None and not (Path(sys.executable).parent / "guidellm").exists():
        parser.error("run with .venv-workloads/bin/python (GuideLLM)")
    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    plan = build_plan(load_stack("local"), "local")
    vllm = plan.vllm
    model_args = ["--model", str(args.model.resolve()),
                  "--served-model-name", vllm.served_model_name]  # fmt: skip
    tuning = vllm.server_args()
    admission_flags = ["--max-num-queued-reqs", "--max-num-queued-tokens"]
    unbounded = [
        arg
        for i, arg in enumerate(tuning)
        if arg not in admission_flags and (i == 0 or tuning[i - 1] not in admission_flags)
    ]
    template = chat_template_tokens(str(args.model))
    shape = {"prompt_tokens": plan.workload.prompt_tokens - template,
             "output_tokens": plan.workload.output_tokens}  # fmt: skip
    gate = plan.gate
    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU",
        "server": "vLLM CPU build 0.32 (the local stack's), " + " ".join(tuning),
        "traffic": (
            f"{plan.workload.prompt_tokens} prompt / {plan.workload.output_tokens} output "
            "tokens, GuideLLM constant-rate (open loop)"
        ),
        "slo": {"ttft_p95_ms": gate.ttft_p95_ms, "itl_p95_ms": gate.itl_p95_ms},
        "admission": asdict(plan.admission),
        "command": "python -m benchmarks.overload.run " + " ".join(argv or sys.argv[1:]),
        "modes": {},
    }
    for mode, server_args in (("unbounded", unbounded), ("admission", tuning)):
        log = out / f"vllm-{mode}.log"
        server = start_server(model_args + server_args, vllm.environment(), log)
        try:
            if mode == "unbounded":
                streams = gate.one_replica().capacity_concurrency
                capacity = capacity_level(streams, gate.one_replica(), args.model, out)
                result["capacity"] = summarize(capacity) | {
                    "concurrency": streams, "in_flight_mean": capacity.in_flight_mean,
                    "measured_requests": capacity.measured_requests,
                }  # fmt: skip
                rate = capacity.requests_per_s
            sampler = QueueSampler()
            sampler.start()
            before = rejections(log)
            rates = [round(k * rate, 2) for k in MULTIPLES]
            # Open loop: every arrival is sent, however many wait (a cap on connections would
            # hold arrivals back once the backlog reached it: at 3× for 30 s, 1,024 did).
            ceiling = math.ceil(1.1 * max(rates) * args.seconds)
            profile = {"kind": "constant", "rate": rates, "max_concurrency": ceiling}
            run = metered(partial(open_loop, f"overload-{mode}", profile,
                                  [args.seconds] * len(rates), shape, args.model, out),
                          [METRICS])  # fmt: skip
            sampler.stop.set()
            sampler.join()
            uncached = scenarios(gate.one_replica())[0]
            if problem := prefix_cache_problem(run, uncached, mode):
                raise NotMeasured(f"{mode}: {problem}")
            levels = run.levels
            rows = []
            for k, offered, level in zip(MULTIPLES, rates, levels, strict=True):
                problem = sent_problem(level, offered, plan.workload.prompt_tokens,
                                       gate.shape_tolerance)  # fmt: skip
                if problem:
                    raise NotMeasured(f"{mode} at {k}× capacity: {problem}")
                rows.append(summarize(level) | {"multiple": k, "offered_rps": offered})
            result["modes"][mode] = {
                "levels": rows,
                "prefix_cache_hit_share": run.prefix_cache_hit_share,
                "rejected_http_503": rejections(log) - before,
                "queue": [[round(t, 1), w, r] for t, w, r in sampler.samples],
            }
        except NotMeasured as error:
            print(f"overload: could not measure — {error}; nothing written", file=sys.stderr)
            return 2
        finally:
            server.stop()
    (RESULTS / "overload.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({m: v["levels"] for m, v in result["modes"].items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
