"""GuideLLM against a real vLLM server (the CPU build) serving a tiny random-weight Llama."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from infra.local.processes import all_cores_but_last
from workloads.benchmark.__main__ import main
from workloads.benchmark.gate import targets_from_plan
from workloads.benchmark.metrics import parse_report
from workloads.benchmark.window import rewindow
from workloads.contract import level_bound

VLLM_PYTHON = os.environ.get("LEANRAG_VLLM_PYTHON", "")
pytestmark = pytest.mark.skipif(
    not Path(VLLM_PYTHON).is_file(),
    reason="set LEANRAG_VLLM_PYTHON to the vLLM CPU environment's python (make test does)",
)


ADMISSION_LIMIT = 100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(tiny_model: Path, tmp_path_factory):
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "HF_HUB_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
    }
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                *all_cores_but_last(),  # GuideLLM gets a core of its own, as in the local stack
                VLLM_PYTHON,
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model",
                str(tiny_model),
                "--served-model-name",
                "tiny",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--max-model-len",
                "512",
                "--max-num-seqs",
                "8",
                # Admission control (vLLM ≥ 0.29): beyond this many requests in flight, HTTP 503.
                # Above what the gate tests send (their search stops at 64 streams).
                "--max-num-queued-reqs",
                str(ADMISSION_LIMIT),
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2)
                break
            except OSError:
                time.sleep(2)
        if process.poll() is not None:
            pytest.fail(f"vLLM exited: {log.read_text()[-2000:]}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def _plan(tmp: Path, **changes: float) -> Path:
    gate = {
        "ttft_p95_ms": 5000,
        "itl_p95_ms": 1000,
        "min_throughput_rps": 0.1,
        "max_error_rate": 0.05,
        "concurrency": 2,
        "prompt_tokens": 64,
        # Long enough answers that GuideLLM's per-request turnaround (≈ 10-20 ms) stays a
        # small share of each stream's time: the load the gate asks for is applied.
        "output_tokens": 96,
        "shared_prefix_tokens": 0,
        "predicted_requests_per_s": 1.0,
        "predicted_output_tokens_per_s": 96.0,
        "capacity_tolerance": 100.0,
        "predicted_e2e_ms": 500.0,
        "capacity_concurrency": 2,
        "capacity_requests_per_s": 1.0,
        "capacity_limited_by": "ttft",
        "shape_tolerance": 0.05,
        "min_measured_requests": 12,
        "cost_per_hour_usd": 0.1,
    } | changes
    path = tmp / "plan.json"
    path.write_text(json.dumps({"stack": "test", "gate": gate, "model": {"random_weights": True}}))
    return path


def test_gate_measures_real_vllm_by_count_and_searches_its_capacity(
    vllm_server: str, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    # The goodput search probes from the predicted capacity (2) up to 4 × it, by count.
    plan = _plan(tmp_path, ttft_p95_ms=400)
    code = main(["--plan", str(plan), "--target", vllm_server, "--tokenizer", str(tiny_model),
                 "--out", str(out)])  # fmt: skip
    report = json.loads((out / "gate.json").read_text())
    assert report["verdict"] != "could-not-measure", report["reason"]
    level = report["gate_level"]
    assert report["model"] == "tiny"
    # The plan's shape reached vLLM: 64 prompt tokens, chat template included; 96 out.
    assert report["chat_template_tokens"] > 0
    assert abs(level["prompt_tokens_mean"] / 64 - 1) <= 0.05
    assert level["output_tokens_mean"] == 96
    # Count-bounded: at least max(4 × 2, 12) requests measured after warm-up, none errored.
    assert report["gate_level_bound"]["bounded_by"] == "requests"
    assert level["measured_requests"] >= 12 and level["errored"] == 0
    assert 0 < level["ttft_ms"]["p50"] <= level["ttft_ms"]["p95"] <= level["ttft_ms"]["p99"]
    probes = report["capacity_at_slo"]["measured"]["probes"]
    assert [p["streams"] for p in probes][:2] == [2, 4]
    assert all(p["determined_requests"] > 0 for p in probes)
    assert "count-bounded at its own streams" in report["capacity_at_slo"]["decision"]
    # One GuideLLM level per probe, each sized for its own streams (search.py says why).
    search = report["searches"]["optimized"]
    targets = targets_from_plan(json.loads(plan.read_text()))
    assert [b["total_requests"] for b in search["bounds"]] == [
        level_bound(targets, p["streams"]).total_requests for p in probes
    ]
    assert [Path(r).name for r in search["reports"]] == [
        f"guidellm-optimized-capacity-c{p['streams']}.json" for p in probes
    ]
    assert code in (0, 1)
    # Beside each raw GuideLLM report a trimmed copy (no per-request samples) that parses to
    # the same levels — what comes back from a GPU machine.
    raw, trimmed = out / "guidellm-optimized-rag.json", out / "guidellm-optimized-rag-trimmed.json"
    assert trimmed.stat().st_size < raw.stat().st_size
    levels = parse_report(rewindow(json.loads(raw.read_text())))
    assert parse_report(json.loads(trimmed.read_text())) == levels
    assert levels[0].warmup_requests is not None and levels[0].window_refusal is None
    # The same measurement against a TTFT target below what was measured fails the gate.
    strict = _plan(tmp_path, ttft_p95_ms=level["ttft_ms"]["p95"] / 2)
    failed = main(["--plan", str(strict), "--target", vllm_server, "--out", str(tmp_path / "f"),
                   "--from-report", str(out / "guidellm-optimized-rag.json")])  # fmt: skip
    assert failed == 1


def test_empty_prompts_from_a_word_tokenizer_are_refused(
    vllm_server: str, word_tokenizer: Path, tmp_path: Path
) -> None:
    """GuideLLM builds its prompts with the tokenizer it is given: a word-level one turns its
    English text into <unk>, which decodes to "" — only the chat template reaches vLLM."""
    out = tmp_path / "run"
    plan = _plan(tmp_path)
    args = ["--plan", str(plan), "--target", vllm_server]
    code = main([*args, "--tokenizer", str(word_tokenizer), "--out", str(out),
                 "--skip-capacity-search"])  # fmt: skip
    report = json.loads((out / "gate.json").read_text())
    assert code == 2 and report["verdict"] == "could-not-measure"
    assert report["checks"] == []
    assert report["gate_level"]["prompt_tokens_mean"] < 20
    assert "traffic did not match the plan: measured" in report["reason"]
    assert "prompt tokens, planned 64" in report["reason"]
    # The same report judged later is refused the same way.
    again = main([*args, "--out", str(tmp_path / "again"),
                  "--from-report", str(out / "guidellm-optimized-rag.json")])  # fmt: skip
    assert again == 2


def test_vllm_sheds_load_beyond_its_admission_limit(vllm_server: str) -> None:
    """What the plan's --max-num-queued-reqs buys: a burst above the limit gets fast 503s
    instead of a queue; the admitted requests all complete."""
    import threading
    import urllib.error

    # Long enough answers that the first ones are still streaming when the last arrive.
    burst = ADMISSION_LIMIT + 60
    body = json.dumps({"model": "tiny", "prompt": "hello there", "max_tokens": 128,
                       "ignore_eos": True}).encode()  # fmt: skip
    outcomes: list[tuple[int, float]] = []
    lock = threading.Lock()
    start = threading.Barrier(burst)

    def send() -> None:
        request = urllib.request.Request(f"{vllm_server}/v1/completions", data=body,
                                         headers={"Content-Type": "application/json"})  # fmt: skip
        start.wait()
        began = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=300) as reply:
                code = reply.status
        except urllib.error.HTTPError as error:
            code = error.code
        with lock:
            outcomes.append((code, time.monotonic() - began))

    threads = [threading.Thread(target=send) for _ in range(burst)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes = [code for code, _ in outcomes]
    rejected = [seconds for code, seconds in outcomes if code == 503]
    admitted = [seconds for code, seconds in outcomes if code == 200]
    assert set(codes) <= {200, 503}, codes
    # The cap is on requests in flight, not on the total: requests that finish while the burst
    # still arrives free their slots, so more than the limit may be admitted in all.
    assert len(admitted) + len(rejected) == burst
    assert len(rejected) >= 10, (len(rejected), len(admitted))
    # Shed fast: a rejection does not wait behind the queue it was refused from.
    assert sorted(rejected)[len(rejected) // 2] < sorted(admitted)[len(admitted) // 2]
