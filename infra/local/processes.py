"""Long-running local processes (servers): start in their own process group, wait until they
answer, stop the whole group. Every server the local stack starts goes through here."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class ProcessError(RuntimeError):
    """A server exited or never answered; the message points at its log."""


@dataclass
class Server:
    name: str
    process: subprocess.Popen
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_until_ready(self, url: str, timeout_s: float) -> None:
        """Poll `url` until it answers 200; fail at once if the process exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessError(
                    f"{self.name} exited with code {self.process.returncode}; "
                    f"log {self.log}:\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(1)
        raise ProcessError(f"{self.name} did not answer {url} in {timeout_s:.0f} s; log {self.log}")

    def stop(self, grace_s: float = 15) -> None:
        """SIGTERM the process group, SIGKILL what is left after `grace_s`."""
        if self.alive():
            _signal_group(self.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace_s)
        _signal_group(self.pid, signal.SIGKILL)  # children that outlived their parent
        if self.process.poll() is None:
            self.process.wait(timeout=5)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def start(
    name: str,
    command: Sequence[str],
    log: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Server:
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    process = subprocess.Popen(
        list(command),
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        start_new_session=True,  # its own process group: stop() reaches every child
    )
    handle.close()
    return Server(name=name, process=process, log=log)


def all_cores_but_last() -> list[str]:
    """A command prefix that runs a server on every core this process may use but the last
    (`taskset`), leaving that one to a load generator; empty on one core or without taskset.

    vLLM's CPU build spins its compute threads on every core it has; a load generator on the
    same cores cannot send requests on time (2 cores: 3.0 of 4 streams in flight, 92 ms to
    dispatch each request; vLLM on core 0 and GuideLLM on core 1: 3.8 in flight, 11 ms, and
    the server twice as fast)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2 or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", ",".join(str(core) for core in cores[:-1])]


def group_alive(pid: int) -> bool:
    """True while any process of the group `pid` leads is running."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_recorded(pids_file: Path, grace_s: float = 15) -> list[str]:
    """Stop every process group recorded in `pids_file` ({name: pid}); return their names."""
    if not pids_file.exists():
        return []
    recorded: dict[str, int] = json.loads(pids_file.read_text())
    for pid in recorded.values():
        _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and any(group_alive(p) for p in recorded.values()):
        time.sleep(0.5)
    for pid in recorded.values():
        _signal_group(pid, signal.SIGKILL)
    pids_file.unlink()
    return list(recorded)
