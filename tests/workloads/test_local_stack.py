"""End to end: `leanrag local up` on this CPU machine — tiny trained Llama, LLM Compressor and
its quality check through vLLM,
vLLM CPU, Docling → Milvus Lite → Llama Stack, one RAG answer, GuideLLM and the gate — then
`leanrag local down`, vLLM killed during the gate, a re-run that resumes from the finished
steps, and a failing step that stops every process it started."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from infra.local.processes import group_alive
from workloads.ingest.evaluate import SAMPLE_CORPUS

VLLM = os.environ.get("LEANRAG_VLLM_PYTHON")
LLAMA_STACK = os.environ.get("LEANRAG_LLAMA_STACK_PYTHON")
pytestmark = pytest.mark.skipif(
    not (VLLM and LLAMA_STACK), reason="vLLM / Llama Stack environments not set (make test)"
)
LEANRAG = str(Path(sys.executable).parent / "leanrag")
COUNT = (
    "import sys\n"
    "from workloads.ingest.store import MilvusStore\n"
    "store = MilvusStore(sys.argv[1], 'leanrag_docs', 384, create=False)\n"
    "print(store.count())\n"
)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("local-stack")


def local(*args: str, ports: list[int], run_dir: Path) -> subprocess.CompletedProcess[str]:
    vllm, embeddings, llama_stack = ports
    command = [LEANRAG, "local", *args, "--run-dir", str(run_dir)]
    if args[0] == "up":
        command += ["--vllm-port", str(vllm), "--embeddings-port", str(embeddings),
                    "--llama-stack-port", str(llama_stack)]  # fmt: skip
    env = {**os.environ, "LEANRAG_WORKLOADS_PYTHON": sys.executable}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=1500)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def test_local_up_runs_every_step_and_down_cleans_up(run_dir: Path) -> None:
    ports = free_ports(3)
    result = local("up", ports=ports, run_dir=run_dir)
    # 1: the gate judged and failed; any other end (a step failed) leaves no summary.
    output = result.stdout[-3000:] + result.stderr[-3000:]
    assert result.returncode in (0, 1) and (run_dir / "summary.json").exists(), output
    summary = json.loads((run_dir / "summary.json").read_text())

    # 1-2. the tiny trained model (not random), its compressed checkpoint and quality record
    assert summary["model"]["random_weights"] is False
    assert "RANDOM WEIGHTS" not in (run_dir / "summary.md").read_text()
    checkpoint = Path(summary["model"]["checkpoint"])
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "compressed-tensors"
    assert json.loads((checkpoint / "leanrag-quantize.json").read_text())["scheme"] == "int8-w8a8"
    quality = summary["model"]["quality"]
    assert quality["measured"] and quality["measured_by"].startswith("vLLM")
    assert quality["violations"] == [] and 0 < quality["kl_nats_per_token"] < 0.02

    # 4. every sample document ingested into Milvus Lite
    ingest = summary["ingest"]
    assert ingest["files"] == 20 and ingest["stored_chunks"] > 20
    # 5. the answer came through Llama Stack with retrieved chunks as its context
    rag = summary["rag"]
    assert rag["model"].startswith("vllm/") and rag["vector_store_id"].startswith("vs_")
    assert rag["citations"][0]["source"] == "products/heron-gateway.html"
    context = rag["prompt"][-1]["content"]
    for citation in rag["citations"]:
        assert (SAMPLE_CORPUS / citation["source"]).exists()
        assert f"[{citation['number']}] ({citation['source']}) {citation['text']}" in context
    assert rag["answer"]  # random weights: text, not sense

    # 6. the speed probe, GuideLLM's report and the gate's verdict on the plan's own traffic
    calibration = summary["calibration"]
    assert calibration["probe"]["loaded_concurrency"] == 16
    assert calibration["step_overhead_ms"] > 0
    gate = json.loads(Path(summary["gate"]["json"]).read_text())
    assert gate["verdict"] == summary["gate"]["status"] in ("pass", "fail"), gate["reason"]
    # The live quality check replayed the quantize step's passages on the served checkpoint.
    live = gate["live_quality"]
    assert live["token_count_mismatches"] == 0
    assert live["mean_abs_delta_nats"] < live["tolerance_nats"]
    assert "quality_logprob_delta_nats" in {check["name"] for check in gate["checks"]}
    (level,) = gate["runs"]["optimized"]["rag"]["levels"]
    assert level["concurrency"] == 4 and level["measured_requests"] >= 100
    assert abs(level["prompt_tokens_mean"] / 448 - 1) <= 0.05
    assert level["output_tokens_mean"] == 32
    assert (
        gate["targets"]["capacity_requests_per_s"]
        == (summary["predicted_capacity_at_slo"]["requests_per_s"])
    )
    # The CPU build streams in bursts: capacity at the SLO is searched on GPUs only.
    assert gate["capacity_at_slo"]["measured"] is None and gate["capacity_search"] is False
    assert set(summary["steps_seconds"]) >= {"model", "quantize", "serve", "ingest", "rag",
                                              "speed-probe", "benchmark"}  # fmt: skip

    # The servers keep running for the user until `local down`.
    pids = json.loads((run_dir / "pids.json").read_text())
    assert set(pids) == {"vllm", "embeddings", "llama-stack"}
    # vLLM runs with the stack's plugin folder on its path, as the cluster's ConfigMap mount
    # (tests/workloads/test_vllm_plugin.py: vLLM loads that folder and streams the same text).
    environ = dict(
        item.split(b"=", 1)
        for item in Path(f"/proc/{pids['vllm']}/environ").read_bytes().split(b"\0")
        if b"=" in item
    )
    plugins = run_dir.resolve() / "vllm-plugins"
    assert environ[b"PYTHONPATH"].decode().split(os.pathsep)[0] == str(plugins)
    assert environ[b"LEANRAG_DETOKENIZER_PRIME_TOKENS"] == b"32"
    assert (plugins / "leanrag_vllm_plugin.py").is_file()
    assert answers(f"http://127.0.0.1:{ports[0]}/health")
    assert answers(f"http://127.0.0.1:{ports[2]}/v1/health")
    down = local("down", ports=ports, run_dir=run_dir)
    assert down.returncode == 0 and "vllm" in down.stdout
    assert not any(group_alive(pid) for pid in pids.values())
    assert not answers(f"http://127.0.0.1:{ports[0]}/health")

    # Count in another process: Milvus Lite keeps a file lock for the life of a process.
    count = subprocess.run(
        [sys.executable, "-c", COUNT, str(run_dir / "milvus" / "ledger.db")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert int(count.stdout.strip().splitlines()[-1]) == ingest["stored_chunks"]


def test_vllm_killed_during_the_gate_ends_in_time_and_stops_everything(
    run_dir: Path,
) -> None:
    """A real fault: vLLM's process group is SIGKILLed while GuideLLM loads it. The gate ends
    with exit 2 ("could not measure", naming what failed) well within its time bound, `local
    up` reports the failed step and stops every process it started; the next test re-runs the
    stack on the same folder and resumes from the finished steps."""
    ports = free_ports(3)
    vllm, _, llama_stack = ports
    command = [LEANRAG, "local", "up", "--run-dir", str(run_dir), "--vllm-port", str(vllm),
               "--embeddings-port", str(ports[1]),
               "--llama-stack-port", str(llama_stack)]  # fmt: skip
    env = {**os.environ, "LEANRAG_WORKLOADS_PYTHON": sys.executable, "COLUMNS": "200"}
    up = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    assert up.stdout is not None
    for line in up.stdout:
        if "▶ benchmark" in line:
            break
    time.sleep(15)  # GuideLLM is mid-level: the speed probe ran, the gate started loading
    assert up.poll() is None, "the stack ended before the fault"
    pids = json.loads((run_dir / "pids.json").read_text())
    killed = time.monotonic()
    os.killpg(pids["vllm"], signal.SIGKILL)
    out, err = up.communicate(timeout=600)
    seconds = time.monotonic() - killed
    assert up.returncode == 2, out[-2000:] + err[-2000:]
    assert seconds < 60, f"{seconds:.1f} s from the kill to the verdict"
    assert "step benchmark could not measure (exit 2)" in err
    assert "stopped answering" in err and "every process it started is stopped" in err
    assert "gate: pass" not in err  # the log tail is this run's, not an earlier one's
    gate = json.loads((run_dir / "benchmark" / "gate.json").read_text())
    assert gate["verdict"] == "could-not-measure"
    assert not (run_dir / "pids.json").exists()
    assert not any(group_alive(pid) for pid in pids.values())
    assert not answers(f"http://127.0.0.1:{llama_stack}/v1/health")
    print(f"vLLM killed mid-gate: exit 2 after {seconds:.1f} s")


def test_rerun_reuses_finished_steps_and_stops_after(run_dir: Path) -> None:
    before = json.loads((run_dir / "state.json").read_text())
    result = local("up", "--stop-after", ports=free_ports(3), run_dir=run_dir)
    assert result.returncode in (0, 1), result.stdout[-3000:] + result.stderr[-3000:]
    assert "model: reused" in result.stdout and "quantize: reused" in result.stdout
    after = json.loads((run_dir / "state.json").read_text())
    assert after["quantize"] == before["quantize"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["ingest"]["skipped"] == 20  # the ledger already holds every document
    assert not (run_dir / "pids.json").exists()


def test_a_failing_step_stops_every_process_it_started(run_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-documents"
    empty.mkdir()
    ports = free_ports(3)
    result = local("up", "--documents", str(empty), ports=ports, run_dir=run_dir)
    assert result.returncode == 2
    assert "step ingest failed" in result.stderr and "no documents found" in result.stderr
    assert not (run_dir / "pids.json").exists()
    assert not answers(f"http://127.0.0.1:{ports[2]}/v1/health")
    leftovers = subprocess.run(
        ["pgrep", "-f", f"port {ports[0]}"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout.strip() == ""
