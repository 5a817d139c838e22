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

from workloads.benchmark.__main__ import main

VLLM_PYTHON = os.environ.get("LEANRAG_VLLM_PYTHON", "")
pytestmark = pytest.mark.skipif(
    not Path(VLLM_PYTHON).is_file(),
    reason="set LEANRAG_VLLM_PYTHON to the vLLM CPU environment's python (make test does)",
)


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
        "output_tokens": 16,
        "shared_prefix_tokens": 0,
        "predicted_requests_per_s": 1.0,
        "predicted_output_tokens_per_s": 16.0,
        "capacity_tolerance": 100.0,
    } | changes
    path = tmp / "plan.json"
    path.write_text(json.dumps({"stack": "test", "gate": gate, "model": {"random_weights": True}}))
    return path


def test_guidellm_measures_real_vllm_and_the_gate_decides(
    vllm_server: str, tiny_model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    code = main(
        [
            "--plan",
            str(_plan(tmp_path)),
            "--target",
            vllm_server,
            "--tokenizer",
            str(tiny_model),
            "--seconds",
            "6",
            "--concurrency",
            "2",
            "--out",
            str(out),
        ]
    )
    report = json.loads((out / "gate.json").read_text())
    level = report["gate_level"]
    assert code == 0, report["reason"]
    assert report["model"] == "tiny"
    assert level["successful"] > 0 and level["errored"] == 0
    assert level["requests_per_s"] > 0 and level["output_tokens_per_s"] > 0
    assert 0 < level["ttft_ms"]["p50"] <= level["ttft_ms"]["p95"] <= level["ttft_ms"]["p99"]
    assert level["itl_ms"]["p95"] > 0
    # The same measurement against a TTFT target below what was measured fails the gate.
    strict = _plan(tmp_path, ttft_p95_ms=level["ttft_ms"]["p95"] / 2)
    failed = main(
        [
            "--plan",
            str(strict),
            "--target",
            vllm_server,
            "--out",
            str(tmp_path / "f"),
            "--from-report",
            str(out / "guidellm-optimized-rag.json"),
        ]
    )
    assert failed == 1
