"""Planted secret values never leave the Secret objects that must hold them.

Every secret key a stack takes is set to a recognisable value; the real program runs under
Pulumi mocks and the CLI plans and renders the stack. The values may appear only inside the
Kubernetes Secrets' payload, still wrapped as Pulumi secrets (encrypted in the state) — never in
another resource's inputs, a stack output, a Pulumi log line, the plan JSON/Markdown, a rendered
manifest, or the CLI's output. (The gate's own credential is planted in
tests/workloads/test_benchmark.py.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc
from typer.testing import CliRunner

from infra.cli import app
from infra.config import SECRET_KEYS
from tests.component.test_platform import run_stack
from tests.conftest import edited, stack_raw, write_stack

PLANTED = {key: f"PLANTED-{key}-7f3c9e1d" for key in SECRET_KEYS}


def _planted_raw() -> dict[str, Any]:
    # An S3 checkpoint, so every secret key is one the stack uses.
    raw = edited(stack_raw("prod"), "serving.checkpointUri", "s3://models/llama-fp8")
    for key, value in PLANTED.items():
        raw = edited(raw, key, value)
    return raw


def _leaks(value: Any, where: str) -> list[str]:
    """Paths under `value` where a planted value shows outside a Pulumi secret envelope."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return []  # wrapped: encrypted in the state, masked in every display
        return [hit for k, v in value.items() for hit in _leaks(v, f"{where}.{k}")]
    if isinstance(value, (list, tuple)):
        return [hit for i, v in enumerate(value) for hit in _leaks(v, f"{where}[{i}]")]
    text = value if isinstance(value, str) else json.dumps(value, default=repr)
    return [f"{where}: {key}" for key, planted in PLANTED.items() if planted in text]


def _envelopes(value: Any) -> list[Any]:
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return [value["value"]]
        return [e for v in value.values() for e in _envelopes(v)]
    if isinstance(value, list):
        return [e for v in value for e in _envelopes(v)]
    return []


def test_the_program_keeps_planted_secrets_inside_secret_objects(monkeypatch) -> None:
    logged: list[str] = []
    for level in ("debug", "info", "warn", "error"):
        monkeypatch.setattr(
            pulumi.log, level, lambda msg, *a, **k: logged.append(str(msg)), raising=True
        )
    recorded = run_stack("prod", _planted_raw(), monkeypatch, secret_keys=SECRET_KEYS)
    leaks = [
        hit
        for resource in recorded.mocks.resources
        for hit in _leaks(resource.inputs, f"{resource.typ}/{resource.name}")
    ]
    assert not leaks, leaks
    # Each planted value does reach the cluster, in a Secret, wrapped.
    wrapped = json.dumps(
        [
            envelope
            for r in recorded.mocks.resources
            if r.typ == "kubernetes:core/v1:Secret"
            for envelope in _envelopes(r.inputs)
        ]
    )
    assert all(planted in wrapped for planted in PLANTED.values()), wrapped
    plain_outputs = {k: v for k, v in recorded.outputs.items() if not isinstance(v, pulumi.Output)}
    assert plain_outputs and not _leaks(plain_outputs, "outputs")
    assert not [line for line in logged if any(p in line for p in PLANTED.values())]


def test_the_cli_never_writes_planted_secrets(tmp_path: Path) -> None:
    """A stack file holds secrets only as Pulumi ciphertext (plaintext is refused): plant
    recognisable ciphertexts and look for them in everything `leanrag plan` and
    `leanrag render` write or print."""
    raw = edited(stack_raw("prod"), "serving.checkpointUri", "s3://models/llama-fp8")
    path = write_stack(tmp_path, "planted", raw)
    path.write_text(
        path.read_text()
        + "".join(f"  leanrag:{key}:\n    secure: v1:{value}\n" for key, value in PLANTED.items())
    )
    runner = CliRunner()
    out = tmp_path / "out"
    common = ["--stacks-dir", str(tmp_path), "--stack", "planted"]
    results = [
        runner.invoke(
            app,
            ["plan", *common, "--output", str(out / "plan.json"), "--output", str(out / "plan.md")],
        ),
        runner.invoke(app, ["render", *common, "--out", str(out / "manifests")]),
    ]
    for result in results:
        assert result.exit_code == 0, result.output
        assert not any(p in result.output for p in PLANTED.values())
    written = [f for f in out.rglob("*") if f.is_file()]
    assert {f.name for f in written} >= {"plan.json", "plan.md"}
    assert len(written) > 20  # every manifest of the stack
    leaking = [f.name for f in written if any(p in f.read_text() for p in PLANTED.values())]
    assert not leaking
    # The plan names which secrets are set, without their values.
    assert json.loads((out / "plan.json").read_text())["secrets"] == list(SECRET_KEYS)
