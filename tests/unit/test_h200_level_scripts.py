"""The GPU machine's level scripts (benchmarks/gpu/h200/{levels,repeat,bracket,session}.sh)
decide what to run next from the gate's own report, resume across calls and stop before a
call's deadline. The gate itself needs a vLLM server, so a stand-in gate.sh writes the report a
level would, and a stand-in serve.sh records which arguments it started a server with."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import time
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


def session(machine: Path, queue: str, seconds_left: int = 500, healthy: bool = True) -> list[str]:
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
