"""The GPU machine's level scripts (benchmarks/gpu/h200/{levels,repeat,bracket,session}.sh)
decide what to run next from the gate's own report, resume across calls and stop before a
call's deadline. The gate itself needs a vLLM server, so a stand-in gate.sh writes the report a
level would, and a stand-in serve.sh records which arguments it started a server with."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.gpu.h200.summary import SCRIPTS

# Writes $OUT/LABEL/gate.json as the gate does: met below 120 streams, missed from 120 on,
# refused (a steady-state refusal, no latency verdict) at 99.
FAKE_GATE = """#!/usr/bin/env bash
plan=$1; label=$2; shift 2
while [ $# -gt 0 ]; do [ "$1" = --concurrency ] && streams=$2; shift; done
mkdir -p "$OUT/$label"
echo "$label" >> "$OUT/calls"
sleep "${FAKE_SLEEP:-0}"
# Without --concurrency: the planned level and the capacity search, which take their time.
[ -z "${streams:-}" ] && { streams=100; sleep "${FAKE_SEARCH_SLEEP:-0}"; }
python3 - "$streams" "$OUT/$label/gate.json" <<'PY'
import json, sys
streams, path = int(sys.argv[1]), sys.argv[2]
ok = streams < 120
checks = [{"name": "ttft_p95_ms", "passed": ok}, {"name": "itl_p95_ms", "passed": True},
          {"name": "error_rate", "passed": True}]
refusals = ["not a steady state"] if streams == 99 else []
json.dump({"checks": [] if refusals else checks, "refusals": refusals}, open(path, "w"))
PY
echo "gate $label exit 0"
"""


# Records the start in the level calls' log and the running server's arguments, as serve.sh does.
FAKE_SERVE = """#!/usr/bin/env bash
echo "serve:$(basename "$1" .args)" >> "$RES/calls"
sleep "${FAKE_SERVE_SLEEP:-0}"
cp "$1" "$SERVER_STATE"
"""


# Writes $OUT/NAME/load.txt as profile.sh does (its marker that the profile ran).
FAKE_PROFILE = """#!/usr/bin/env bash
mkdir -p "$OUT/$1"
echo "profile:$1" >> "$OUT/calls"
sleep "${FAKE_SLEEP:-0}"
echo "steady yes" > "$OUT/$1/load.txt"
"""


@pytest.fixture
def machine(tmp_path: Path) -> Path:
    scripts = tmp_path / "h200"
    scripts.mkdir()
    for name in ("levels.sh", "repeat.sh", "bracket.sh", "session.sh"):
        shutil.copy(SCRIPTS / name, scripts / name)
    (scripts / "gate.sh").write_text(FAKE_GATE)
    (scripts / "serve.sh").write_text(FAKE_SERVE)
    (scripts / "profile.sh").write_text(FAKE_PROFILE)
    (tmp_path / "out").mkdir()
    return tmp_path


def run(machine: Path, script: str, *args: str, seconds_left: int = 500) -> list[str]:
    """The script's gate calls so far. With seconds_left below 2 levels each level takes 5 s,
    so the second level's start is past the deadline (3 s of slack for a slow start)."""
    env = {
        "FAKE_SLEEP": "5" if seconds_left < 200 else "0",
        "PATH": "/usr/bin:/bin",
        "RES": str(machine / "res"),
        "OUT": str(machine / "out"),
        "DEADLINE": str(int(time.time()) + seconds_left),
        "LEVEL_S": "100",
    }
    subprocess.run(
        ["bash", str(machine / "h200" / script), "plan.json", *args],
        env=env, check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    calls = machine / "res" / "calls"
    return calls.read_text().split() if calls.exists() else []


def test_bracket_goes_up_after_a_met_level_and_down_after_a_missed_one(machine: Path) -> None:
    assert run(machine, "bracket.sh", "opt", "112", "127", "96") == ["opt-c112", "opt-c127"]
    shutil.rmtree(machine / "res")
    assert run(machine, "bracket.sh", "opt", "127", "140", "120") == ["opt-c127", "opt-c120"]


def test_bracket_does_not_guess_past_a_refused_level(machine: Path) -> None:
    assert run(machine, "bracket.sh", "opt", "99", "112", "86") == ["opt-c99"]


def test_a_level_that_does_not_fit_waits_for_the_next_call(machine: Path) -> None:
    # 103 s left, 100 s a level: the first runs, the second waits; the next call resumes.
    assert run(machine, "bracket.sh", "opt", "112", "127", "96", seconds_left=103) == ["opt-c112"]
    assert run(machine, "bracket.sh", "opt", "112", "127", "96") == ["opt-c112", "opt-c127"]


def test_repeats_resume_and_come_back_as_one_archive(machine: Path) -> None:
    assert run(machine, "repeat.sh", "stock", "74", "3", seconds_left=103) == ["stock-c74-r1"]
    calls = run(machine, "repeat.sh", "stock", "74", "3")
    assert calls == ["stock-c74-r1", "stock-c74-r2", "stock-c74-r3"]
    with tarfile.open(machine / "out" / "repeats-stock.tgz") as archive:
        reports = sorted(n for n in archive.getnames() if n.endswith("gate.json"))
        assert reports == [f"./stock-c74-r{r}/gate.json" for r in (1, 2, 3)]
        first = archive.extractfile("./stock-c74-r1/gate.json")
        assert first is not None and json.load(first)["refusals"] == []


def session(
    machine: Path, queue: str, seconds_left: int = 500, healthy: bool = True, search_s: int = 0
) -> list[str]:
    """session.sh on QUEUE: the starts and level calls so far (a start takes 0 s here, a level
    5 s when less than 200 s are left; SERVER_S 1 and LEVEL_S 100 budget them)."""
    run_dir = machine / "run"
    run_dir.mkdir(exist_ok=True)
    for server in ("rag-optimized", "rag-stock", "rag-optimized-profiled"):
        (run_dir / f"{server}.args").write_text(f"--model m --{server}\n")
    (machine / "queue.txt").write_text(queue)
    env = {
        "FAKE_SLEEP": "5" if seconds_left < 200 else "0",
        "PATH": "/usr/bin:/bin",
        "RES": str(machine / "res"),
        "OUT": str(machine / "out"),
        "RUN_DIR": str(run_dir),
        "SERVER_STATE": str(machine / "server.args"),
        "HEALTH_CMD": "true" if healthy else "false",
        "DEADLINE": str(int(time.time()) + seconds_left),
        "LEVEL_S": "100",
        "SERVER_S": "1",
        "FAKE_SEARCH_SLEEP": str(search_s),
        "POLL_S": "1",
        "METRICS_CMD": "echo vllm:num_requests_running 3",
    }
    subprocess.run(
        ["bash", str(machine / "h200" / "session.sh"), str(machine / "queue.txt")],
        env=env, check=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    calls = machine / "res" / "calls"
    return calls.read_text().split() if calls.exists() else []


QUEUE = """# the plan's profile first
rag-optimized rag-optimized-rag-only opt 112 2

rag-stock rag-stock-rag-only stock 74 1
rag-optimized rag-optimized-rag-only opt 86 1
"""


def test_a_session_starts_each_server_once_per_run_of_lines_and_in_order(machine: Path) -> None:
    assert session(machine, QUEUE) == [
        "serve:rag-optimized", "opt-c112-r1", "opt-c112-r2",
        "serve:rag-stock", "stock-c74-r1",
        "serve:rag-optimized", "opt-c86-r1",
    ]  # fmt: skip
    with tarfile.open(machine / "out" / "session.tgz") as archive:
        assert "./opt-c86-r1/gate.json" in archive.getnames()


def test_a_session_resumes_without_restarting_a_server_that_is_up(machine: Path) -> None:
    # 103 s left: a start (1 s budgeted) and one level (100 s) fit, a second level does not.
    assert session(machine, QUEUE, seconds_left=103) == ["serve:rag-optimized", "opt-c112-r1"]
    assert session(machine, QUEUE)[2:] == [
        "opt-c112-r2", "serve:rag-stock", "stock-c74-r1", "serve:rag-optimized", "opt-c86-r1"
    ]  # fmt: skip


def test_a_server_that_is_down_is_started_again_and_a_start_that_does_not_fit_waits(
    machine: Path,
) -> None:
    assert session(machine, QUEUE, seconds_left=103) == ["serve:rag-optimized", "opt-c112-r1"]
    # Not healthy (the machine was given back): started again before the next level.
    assert session(machine, QUEUE, seconds_left=103, healthy=False)[2:] == [
        "serve:rag-optimized", "opt-c112-r2"
    ]  # fmt: skip
    # 100 s left: a stock server's start and a level (101 s) do not fit; nothing runs.
    assert session(machine, QUEUE, seconds_left=100)[4:] == []


def test_a_profile_line_traces_its_own_server_once_and_the_queue_goes_on(machine: Path) -> None:
    queue = "rag-optimized-profiled profile prof 109 1\n" + QUEUE
    assert session(machine, queue, seconds_left=103) == [
        "serve:rag-optimized-profiled", "profile:prof-c109-r1"
    ]  # fmt: skip
    # The next call does not profile again: it starts the plan's own server for the levels.
    assert session(machine, queue)[2:4] == ["serve:rag-optimized", "opt-c112-r1"]
    with tarfile.open(machine / "out" / "session.tgz") as archive:
        assert "./prof-c109-r1/load.txt" in archive.getnames()


# --- profile.sh against a stand-in vLLM: /metrics, /start_profile (writes a trace), /stop_profile


def stand_in_vllm(trace_dir: Path, running: int) -> tuple[ThreadingHTTPServer, str]:
    """Completes 40 requests a second and always has `running` in flight; /start_profile
    writes a torch-profiler trace of 3 steps of a 2-layer model into `trace_dir`."""
    started = time.monotonic()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def reply(self, body: str) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body.encode())

        def do_GET(self) -> None:
            done = int(40 * (time.monotonic() - started))
            self.reply(
                f'vllm:request_success_total{{finished_reason="length"}} {done}.0\n'
                f'vllm:request_success_total{{finished_reason="stop"}} 0.0\n'
                f"vllm:num_requests_running{{}} {running}.0\n"
                f"vllm:num_requests_waiting{{}} 2.0\n"
                f'vllm:num_requests_waiting_by_reason{{reason="capacity"}} 9.0\n'
            )

        def do_POST(self) -> None:
            if self.path == "/start_profile":
                events = [
                    {"ph": "X", "cat": "kernel", "name": name, "ts": 100 * i + j * 40,
                     "dur": 30}
                    for i in range(6)  # 3 steps × 2 layers
                    for j, name in enumerate(("flash::FlashAttnFwdSm90", "cutlass_gemm_e4m3"))
                ]  # fmt: skip
                with gzip.open(trace_dir / "rank0.1.pt.trace.json.gz", "wt") as handle:
                    json.dump({"traceEvents": events}, handle)
            self.reply("")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def profile(tmp_path: Path, running: int) -> tuple[subprocess.CompletedProcess[str], Path]:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"num_hidden_layers": 2}))
    traces = tmp_path / "traces"
    state = tmp_path / "server.args"
    state.write_text(f'--model {model} --profiler-config {{"torch_profiler_dir":"{traces}"}}\n')
    (tmp_path / "server.log").write_text("started\n")
    bench = tmp_path / "bench"
    bench.write_text("#!/bin/sh\nexec sleep 30\n")
    bench.chmod(0o755)
    server, url = stand_in_vllm(traces, running)
    try:
        env = {"PATH": "/usr/bin:/bin", "SERVER_STATE": str(state), "OUT": str(tmp_path / "out"),
               "VLLM_URL": url, "SERVER_LOG": str(tmp_path / "server.log"), "BENCH": str(bench),
               "POLL_S": "0.2", "STEADY_POLLS": "15", "PROFILE_S": "0",
               "SETTLE_S": "0.2"}  # fmt: skip
        result = subprocess.run(
            ["bash", str(SCRIPTS / "profile.sh"), "prof", "10"], env=env,
            cwd=SCRIPTS.parents[2], capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        server.shutdown()
    return result, tmp_path / "out" / "prof"


def test_a_steady_level_is_traced_and_summarized_with_its_load(tmp_path: Path) -> None:
    result, out = profile(tmp_path, running=10)
    assert result.returncode == 0, result.stdout + result.stderr
    load = (out / "load.txt").read_text()
    assert load.startswith("steady yes") and "running 10 waiting 2" in load
    summary = json.loads((out / "kernels.json").read_text())
    assert summary["steps"] == 3.0
    assert set(summary["kinds"]) == {"attention", "GEMM, FP8"}


def test_a_level_that_never_runs_its_streams_is_not_traced(tmp_path: Path) -> None:
    result, out = profile(tmp_path, running=8)  # under 90 % of 10 streams
    assert result.returncode == 3
    assert (out / "load.txt").read_text().startswith("steady no")
    assert not (tmp_path / "traces").exists() or not any((tmp_path / "traces").iterdir())
    assert not (out / "kernels.json").exists()


def _flashinfer(tmp_path: Path, tools: tuple[str, ...], wheels: bool, installed: bool) -> tuple:
    """flashinfer.sh sourced with stand-in tools on a PATH of their own (nothing of this
    machine's but bash's basics), a stand-in site and wheel folder."""
    bin_dir, cuda = tmp_path / "bin", tmp_path / "cuda"
    (cuda / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    for tool in ("ls", "python3", "dirname", "cat"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for tool in tools:
        place = cuda / "bin" if tool == "nvcc" else bin_dir
        (place / tool).write_text("#!/bin/sh\nexit 0\n")
        (place / tool).chmod(0o755)
    site, fi = tmp_path / "site", tmp_path / "fi"
    site.mkdir()
    fi.mkdir()
    if installed:
        (site / "flashinfer").mkdir()
    if wheels:
        (fi / "flashinfer_python-0.6.13-py3-none-any.whl").write_text("not a wheel")
    script = SCRIPTS / "flashinfer.sh"
    done = subprocess.run(
        [shutil.which("bash") or "bash", "-c", f"source {script} && echo READY"],
        env={"PATH": str(bin_dir), "FI_WHEELS": str(fi), "SITE": str(site),
             "CUDA_HOME": str(cuda)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_flashinfer_setup_names_what_its_build_would_miss(tmp_path: Path) -> None:
    code, said = _flashinfer(tmp_path / "a", ("c++", "ninja"), wheels=True, installed=True)
    assert code != 0 and "no nvcc" in said and "READY" not in said
    code, said = _flashinfer(tmp_path / "b", ("nvcc", "ninja"), wheels=True, installed=True)
    assert code != 0 and "no host C++ compiler (c++)" in said
    code, said = _flashinfer(tmp_path / "c", ("nvcc", "c++", "ninja"), wheels=False,
                             installed=False)  # fmt: skip
    assert code != 0 and "no wheels in" in said and "carry it" in said
    code, said = _flashinfer(tmp_path / "d", ("nvcc", "c++"), wheels=True, installed=True)
    assert code != 0 and "no ninja on PATH" in said
    code, said = _flashinfer(tmp_path / "e", ("nvcc", "c++", "ninja"), wheels=True,
                             installed=True)  # fmt: skip
    assert code == 0 and "READY" in said and "/cuda/bin/nvcc" in said


def test_a_search_line_runs_the_gates_search_detached_and_is_watched_across_calls(
    machine: Path,
) -> None:
    """The gate with its capacity search outlasts a call: started detached, watched until the
    call's deadline (the queue waits), watched on by the next call without a second start,
    and once its report is back the queue goes on."""
    queue = "rag-optimized rag-optimized-rag-only opt search 1\n" + QUEUE
    assert session(machine, queue, seconds_left=4, search_s=6) == [
        "serve:rag-optimized", "opt-search-r1"
    ]  # fmt: skip
    assert not (machine / "res" / "opt-search-r1" / "gate.json").exists()
    assert (machine / "out" / "session.tgz").exists()  # what came back so far
    # vLLM's reading so far comes back with it, marked partial (gate.sh drops the mark when
    # it writes the final reading), should the machine go back before the search ends.
    with tarfile.open(machine / "out" / "session.tgz") as archive:
        after = archive.extractfile("./opt-search-r1/metrics-after.txt")
        assert after is not None and after.read() == b"vllm:num_requests_running 3\n"
        mark = archive.extractfile("./opt-search-r1/metrics-after.partial")
        assert mark is not None and b"at a call's deadline while the search ran" in mark.read()
    assert 'rm -f "$out/metrics-after.partial"' in (SCRIPTS / "gate.sh").read_text()
    calls = session(machine, queue, search_s=6)
    assert calls[:3] == ["serve:rag-optimized", "opt-search-r1", "opt-c112-r1"]
    assert calls.count("opt-search-r1") == 1
    assert (machine / "res" / "opt-search-r1" / "gate.json").exists()


def test_a_search_that_ended_without_a_report_is_not_started_again(machine: Path) -> None:
    (machine / "res").mkdir()
    (machine / "res" / "opt-search-r1.pid").write_text("999999\n")  # no such process
    (machine / "res" / "opt-search-r1.log").write_text("gate: the server went away\n")
    queue = "rag-optimized rag-optimized-rag-only opt search 1\n" + QUEUE
    calls = session(machine, queue)
    assert "opt-search-r1" not in calls and calls[:2] == ["serve:rag-optimized", "opt-c112-r1"]
