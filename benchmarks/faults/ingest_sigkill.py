"""Ingestion killed with SIGKILL at random points, then re-run: nothing lost, nothing doubled.

Each trial ingests the sample corpus into a fresh Milvus Lite file with `leanrag-ingest`,
kills the process (SIGKILL, no clean-up) after a random delay within the uninterrupted run's
duration, runs the same command again to completion, and compares the stored chunk ids with
those of an uninterrupted run.

    .venv-workloads/bin/python -m benchmarks.faults.ingest_sigkill [--trials 20] [--seed 1]

Writes benchmarks/results/faults_ingest.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from workloads.ingest.evaluate import SAMPLE_CORPUS
from workloads.ingest.store import MilvusStore

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
INGEST = [sys.executable, "-m", "workloads.ingest", "--source", str(SAMPLE_CORPUS),
          "--no-progress"]  # fmt: skip


def stored(db: Path) -> list[str]:
    """The chunk ids in the file, read in a process of its own: Milvus Lite keeps a server per
    file alive for the reading process's lifetime, which would hold the file against the next
    ingestion run."""
    command = [sys.executable, "-m", "benchmarks.faults.ingest_sigkill", "--ids", str(db)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout.splitlines()[-1])


def _print_ids(db: Path) -> None:
    store = MilvusStore(str(db), "leanrag_docs", 384)
    try:
        rows = store.client.query("leanrag_docs", filter="", output_fields=["id"], limit=100_000)
    finally:
        store.close()
    print(json.dumps(sorted(str(row["id"]) for row in rows)))


def run(db: Path) -> tuple[int, float, str]:
    started = time.monotonic()
    done = subprocess.run([*INGEST, "--milvus-uri", str(db)], capture_output=True, text=True)
    errors = [line for line in done.stderr.splitlines() if "leanrag-ingest:" in line]
    return done.returncode, time.monotonic() - started, (errors or [""])[-1][:300]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work", type=Path, default=ROOT / "out" / "faults")
    parser.add_argument("--ids", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ids:
        _print_ids(args.ids)
        return 0
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    code, reference_s, _ = run(args.work / "reference.db")
    if code != 0:
        raise SystemExit(f"the uninterrupted run failed ({code})")
    reference = stored(args.work / "reference.db")
    rng = random.Random(args.seed)
    trials = []
    for trial in range(args.trials):
        db = args.work / f"trial-{trial}.db"
        delay = rng.uniform(0.2, reference_s)
        process = subprocess.Popen([*INGEST, "--milvus-uri", str(db)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        time.sleep(delay)
        killed = process.poll() is None
        if killed:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        partial = len(stored(db)) if db.exists() and killed else 0
        code, resume_s, error = run(db)
        ids = stored(db)
        trials.append({
            "trial": trial, "kill_after_s": round(delay, 2), "killed": killed,
            "chunks_after_kill": partial, "resume_exit": code, "resume_error": error,
            "resume_s": round(resume_s, 1),
            "chunks": len(ids), "lost": len(set(reference) - set(ids)),
            "extra": len(set(ids) - set(reference)), "duplicated": len(ids) - len(set(ids)),
        })  # fmt: skip
        print(json.dumps(trials[-1]))
    killed = [t for t in trials if t["killed"]]
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
        "command": "python -m benchmarks.faults.ingest_sigkill " + " ".join(argv or sys.argv[1:]),
        "reference": {"chunks": len(reference), "seconds": round(reference_s, 1)},
        "trials": trials,
        "summary": {
            "trials": len(trials),
            "killed_mid_run": len(killed),
            "lost": sum(t["lost"] for t in trials),
            "duplicated_or_extra": sum(t["duplicated"] + t["extra"] for t in trials),
            "resumed_ok": sum(1 for t in trials if t["resume_exit"] == 0),
            "max_resume_s": max(t["resume_s"] for t in trials),
        },
    }
    (RESULTS / "faults_ingest.json").write_text(json.dumps(result, indent=2) + "\n")
    s = result["summary"]
    (RESULTS / "faults_ingest.md").write_text(
        "# Ingestion killed (SIGKILL) at random points, then resumed\n\n"
        f"Measured {result['measured_at']} on {result['machine']}: the sample corpus "
        f"({len(reference)} chunks, {reference_s:.1f} s uninterrupted) into Milvus Lite.\n\n"
        "| trials | killed mid-run | chunks lost | duplicated or extra | resumed with exit 0 "
        "| slowest resume |\n|---|---|---|---|---|---|\n"
        f"| {s['trials']} | {s['killed_mid_run']} | {s['lost']} | {s['duplicated_or_extra']} "
        f"| {s['resumed_ok']} | {s['max_resume_s']} s |\n\n"
        f"Per trial: `faults_ingest.json`. Reproduce: `{result['command']}`.\n"
    )
    print(json.dumps(s))
    return 0 if s["lost"] == 0 and s["duplicated_or_extra"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
