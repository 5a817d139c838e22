"""GuideLLM gate: golden parsing of a real report, verdicts, and a real run against a server."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from infra.plan import GatePlan
from workloads.benchmark.__main__ import main
from workloads.benchmark.gate import COULD_NOT_MEASURE, FAIL, PASS, evaluate
from workloads.benchmark.metrics import ParseError, parse_report
from workloads.benchmark.report import compare
from workloads.benchmark.runner import load_levels, scenarios

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "guidellm" / "mock-server-concurrent.json"
TARGETS = GatePlan(
    ttft_p95_ms=500, itl_p95_ms=50, min_throughput_rps=2, max_error_rate=0.01, concurrency=4,
    prompt_tokens=64, output_tokens=16, shared_prefix_tokens=0, predicted_requests_per_s=18.0,
    predicted_output_tokens_per_s=288.0,
    capacity_tolerance=0.5,
)  # fmt: skip


def test_golden_report_parses_to_the_measured_numbers() -> None:
    levels = parse_report(json.loads(GOLDEN.read_text()))
    assert [level.concurrency for level in levels] == [1, 4]
    four = levels[1]
    assert four.requests_per_s == 18.0
    assert four.output_tokens_per_s == 288.0
    assert four.ttft_ms.p95 == pytest.approx(70.3332, abs=1e-3)
    assert four.itl_ms.p95 == pytest.approx(11.0571, abs=1e-3)
    assert four.e2e_ms.p95 == pytest.approx(223.9788, abs=1e-3)  # seconds converted to ms
    assert (four.successful, four.errored, four.incomplete) == (72, 0, 3)
    assert four.error_rate == 0.0


def test_gate_passes_and_fails_on_chosen_targets() -> None:
    levels = parse_report(json.loads(GOLDEN.read_text()))
    assert evaluate(levels, TARGETS).status == PASS
    tight = evaluate(levels, replace(TARGETS, ttft_p95_ms=50, itl_p95_ms=5))
    assert tight.status == FAIL
    assert {c.name for c in tight.checks if not c.passed} == {"ttft_p95_ms", "itl_p95_ms"}
    off = evaluate(levels, replace(TARGETS, predicted_requests_per_s=100))
    assert [c.name for c in off.checks if not c.passed] == ["capacity_vs_prediction"]
    assert evaluate(levels, replace(TARGETS, min_throughput_rps=50)).status == FAIL


def test_gate_uses_the_planned_concurrency_level() -> None:
    levels = parse_report(json.loads(GOLDEN.read_text()))
    assert evaluate(levels, replace(TARGETS, concurrency=1)).level.concurrency == 1
    assert evaluate(levels, replace(TARGETS, concurrency=3)).level.concurrency == 4


def test_no_successful_requests_cannot_be_measured() -> None:
    level = replace(parse_report(json.loads(GOLDEN.read_text()))[0], successful=0, errored=9)
    verdict = evaluate([level], TARGETS)
    assert verdict.status == COULD_NOT_MEASURE
    assert verdict.exit_code == 2
    assert evaluate([], TARGETS).exit_code == 2


def test_not_a_guidellm_report_is_refused() -> None:
    with pytest.raises(ParseError):
        parse_report({"benchmarks": [{"metrics": {}}]})


def test_before_after_ratios() -> None:
    baseline_level, optimized_level = parse_report(json.loads(GOLDEN.read_text()))
    comparison = compare(
        evaluate([optimized_level], TARGETS),
        evaluate([baseline_level], replace(TARGETS, concurrency=1)),
    )
    assert comparison.throughput_ratio == pytest.approx(18.0 / 5.0)
    assert comparison.cost_per_request_ratio == pytest.approx(5.0 / 18.0)


def test_scenarios_follow_the_workload_profile() -> None:
    shared = scenarios(replace(TARGETS, prompt_tokens=4200, shared_prefix_tokens=4000), (2, 4))
    assert [s.name for s in shared] == ["rag", "shared-document"]
    assert (shared[1].prefix_tokens, shared[1].prompt_tokens) == (4000, 200)
    assert load_levels(16) == (4, 8, 16)
    assert load_levels(1) == (1,)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mock_server(tiny_model: Path):
    port = _free_port()
    guidellm = Path(sys.executable).parent / "guidellm"
    process = subprocess.Popen(
        [
            str(guidellm),
            "mock-server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--model",
            str(tiny_model),
            "--ttft-ms",
            "40",
            "--itl-ms",
            "8",
            "--output-tokens",
            "16",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/v1/models", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def plan_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    gate = {name: getattr(TARGETS, name) for name in TARGETS.__dataclass_fields__}
    path.write_text(json.dumps({"stack": "test", "gate": gate, "model": {"random_weights": True}}))
    return path


@pytest.fixture(scope="module")
def real_run(mock_server: str, plan_file: Path, tmp_path_factory) -> tuple[int, Path]:
    out = tmp_path_factory.mktemp("gate")
    code = main(
        [
            "--plan",
            str(plan_file),
            "--target",
            mock_server,
            "--seconds",
            "3",
            "--concurrency",
            "4",
            "--out",
            str(out),
        ]
    )
    return code, out


def test_real_guidellm_run_passes_and_reports(real_run) -> None:
    code, out = real_run
    report = json.loads((out / "gate.json").read_text())
    assert code == 0, report["reason"]
    assert report["verdict"] == PASS
    level = report["gate_level"]
    assert level["successful"] > 0
    assert level["ttft_ms"]["p95"] >= 40  # the server's configured TTFT
    assert level["itl_ms"]["p50"] >= 8
    assert (out / "gate.png").read_bytes()[:4] == b"\x89PNG"
    markdown = (out / "gate.md").read_text()
    assert "# Deployment gate: **PASS**" in markdown
    assert "random weights" in markdown
    assert list(out.glob("guidellm-optimized-rag.json"))


def test_real_measurement_fails_tight_targets(real_run, tmp_path: Path) -> None:
    _, out = real_run
    strict = tmp_path / "strict-plan.json"
    gate = {name: getattr(TARGETS, name) for name in TARGETS.__dataclass_fields__}
    strict.write_text(json.dumps({"gate": gate | {"ttft_p95_ms": 10}}))
    code = main(
        [
            "--plan",
            str(strict),
            "--target",
            "unused",
            "--out",
            str(tmp_path / "r"),
            "--from-report",
            str(out / "guidellm-optimized-rag.json"),
        ]
    )
    assert code == 1
    report = json.loads((tmp_path / "r" / "gate.json").read_text())
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["ttft_p95_ms"]


def test_endpoint_down_exits_2(plan_file: Path, tmp_path: Path) -> None:
    code = main(
        [
            "--plan",
            str(plan_file),
            "--target",
            f"http://127.0.0.1:{_free_port()}",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 2
    report = json.loads((tmp_path / "gate.json").read_text())
    assert report["verdict"] == COULD_NOT_MEASURE
    assert "did not answer" in report["reason"]


def test_result_is_published_to_a_configmap_through_the_api() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from workloads.benchmark.publish import publish_configmap

    seen: list[tuple[str, str, dict, str]] = []

    class FakeApiServer(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.command, self.path, body, self.headers["Authorization"]))
            # The ConfigMap does not exist yet: PUT → 404, then POST creates it.
            self.send_response(404 if self.command == "PUT" else 201)
            self.end_headers()

        do_PUT = do_POST = _handle

        def log_message(self, *args) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), FakeApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        publish_configmap(
            "leanrag-gate-result",
            {"verdict": "pass", "checks": []},
            f"http://127.0.0.1:{server.server_port}",
            "leanrag-serving",
            "tok",
        )
    finally:
        server.shutdown()
    assert [(m, p) for m, p, _, _ in seen] == [
        ("PUT", "/api/v1/namespaces/leanrag-serving/configmaps/leanrag-gate-result"),
        ("POST", "/api/v1/namespaces/leanrag-serving/configmaps"),
    ]
    body = seen[1][2]
    assert body["data"]["verdict"] == "pass"
    assert json.loads(body["data"]["gate.json"])["verdict"] == "pass"
    assert seen[1][3] == "Bearer tok"


def test_the_plan_file_the_cli_writes_is_what_the_gate_reads() -> None:
    from infra.plan import build_plan
    from infra.report import plan_json
    from infra.stack_source import load_stack
    from workloads.benchmark.gate import targets_from_plan

    plan = build_plan(load_stack("prod"), "prod")
    assert targets_from_plan(json.loads(plan_json(plan))) == plan.gate
    with pytest.raises(KeyError, match="lacks"):
        targets_from_plan({"gate": {"ttft_p95_ms": 1}})


def test_a_hung_run_is_killed_within_its_limit() -> None:
    from workloads.benchmark.runner import _run_bounded

    started = time.monotonic()
    assert _run_bounded(["sh", "-c", "sleep 30 & sleep 30"], limit_s=1) is None
    assert time.monotonic() - started < 10
    done = _run_bounded(["sh", "-c", "echo measured"], limit_s=10)
    assert done is not None and done.returncode == 0 and "measured" in done.stdout
