"""Run GuideLLM with RAG-shaped traffic taken from the plan's gate section."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from infra.plan import GatePlan
from workloads.benchmark.metrics import LevelMetrics, parse_report


class EndpointDown(Exception):
    """The server did not answer, so nothing can be measured (exit code 2)."""


@dataclass(frozen=True)
class Scenario:
    """One GuideLLM run: a traffic shape at one or more concurrencies."""

    name: str
    prompt_tokens: int
    output_tokens: int
    prefix_tokens: int
    concurrencies: tuple[int, ...]


def scenarios(targets: GatePlan, concurrencies: tuple[int, ...]) -> list[Scenario]:
    """The RAG shape (retrieved context in every prompt) and, when the workload has one, the
    shared-document shape (one long prefix that every request repeats)."""
    found = [Scenario("rag", targets.prompt_tokens, targets.output_tokens, 0, concurrencies)]
    if targets.shared_prefix_tokens:
        question = max(targets.prompt_tokens - targets.shared_prefix_tokens, 16)
        found.append(
            Scenario(
                "shared-document",
                question,
                targets.output_tokens,
                targets.shared_prefix_tokens,
                concurrencies,
            )
        )
    return found


def load_levels(concurrency: int) -> tuple[int, ...]:
    """Latency vs load: a quarter, half and all of the planned concurrency."""
    return tuple(sorted({max(1, concurrency // 4), max(1, concurrency // 2), concurrency}))


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


def guidellm_command(
    target: str,
    scenario: Scenario,
    seconds: int,
    output: Path,
    insecure: bool = False,
    tokenizer: str | None = None,
) -> list[str]:
    streams = ",".join(str(c) for c in scenario.concurrencies)
    data = (
        f"kind=synthetic_text,prompt_tokens={scenario.prompt_tokens},"
        f"output_tokens={scenario.output_tokens}"
    )
    if scenario.prefix_tokens:
        data += f",prefix_tokens={scenario.prefix_tokens},prefix_count=1"
    backend = f"kind=openai_http,target={target}" + (",verify=false" if insecure else "")
    executable = shutil.which("guidellm") or str(Path(sys.executable).parent / "guidellm")
    # Token counts need the served model's tokenizer: a local folder keeps air-gapped runs
    # off the hub (by default GuideLLM looks it up by the served model name).
    tokenizer_args = ["--tokenizer", f"kind=hf_auto,model={tokenizer}"] if tokenizer else []
    return [
        executable,
        "run",
        *tokenizer_args,
        "--backend",
        backend,
        "--profile",
        "kind=concurrent",
        "--override",
        "profile.streams",
        streams,
        "--data",
        data,
        "--constraint",
        f"kind=max_duration,seconds={seconds}",
        "--output",
        f"kind=json,path={output}",
        "--disable-progress",
    ]


STARTUP_ALLOWANCE_S = 240


def _run_bounded(command: list[str], limit_s: int) -> subprocess.CompletedProcess[str] | None:
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


def run_scenario(
    target: str,
    scenario: Scenario,
    seconds: int,
    out_dir: Path,
    label: str,
    insecure: bool = False,
    tokenizer: str | None = None,
) -> tuple[Path, list[LevelMetrics]]:
    """Run GuideLLM for one scenario; return its raw report path and parsed levels."""
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / f"guidellm-{label}-{scenario.name}.json"
    command = guidellm_command(target, scenario, seconds, raw, insecure, tokenizer)
    # GuideLLM 0.8.1 has been seen to hang after a finished run (its main loop idle, waiting on
    # a worker). Bound it by the run's own length, kill its whole process group, retry once.
    limit_s = seconds * len(scenario.concurrencies) + STARTUP_ALLOWANCE_S
    completed = None
    for _ in range(2):
        completed = _run_bounded(command, limit_s)
        if completed is not None:
            break
        if raw.is_file():  # the report was written before the hang: the run is complete
            completed = subprocess.CompletedProcess(command, 0, "killed after its report", "")
            break
    if completed is None:
        raise EndpointDown(f"guidellm did not finish within {limit_s} s, twice")
    (out_dir / f"guidellm-{label}-{scenario.name}.log").write_text(
        completed.stdout + completed.stderr
    )
    if completed.returncode != 0 or not raw.is_file():
        raise EndpointDown(
            f"guidellm failed ({completed.returncode}); see "
            f"{out_dir}/guidellm-{label}-{scenario.name}.log"
        )
    return raw, parse_report(json.loads(raw.read_text()))
