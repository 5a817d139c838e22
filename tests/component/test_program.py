"""The Pulumi program's edge: engine config → the same plan the CLI makes; bad stacks stop."""

from __future__ import annotations

import pulumi
import pytest

from infra.plan import build_plan
from infra.program import deploy, plan_from_pulumi
from infra.stack_source import load_stack
from tests.component.pulumi_harness import start
from tests.conftest import CLUSTER_STACKS, edited, stack_raw


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_engine_config_plans_exactly_like_the_stack_file(stack: str) -> None:
    start(stack, stack_raw(stack))
    assert plan_from_pulumi() == build_plan(load_stack(stack), stack)


def test_secret_set_with_pulumi_is_recorded_not_copied() -> None:
    raw = edited(stack_raw("prod"), "modelHubToken", "hf_real_token_value")
    start("prod", raw, secret_keys=("modelHubToken",))
    plan = plan_from_pulumi()
    assert plan.secrets == ("modelHubToken",)
    assert "hf_real_token_value" not in repr(plan)


def test_plaintext_secret_stops_the_program() -> None:
    start("prod", edited(stack_raw("prod"), "modelHubToken", "hf_plain"))
    with pytest.raises(pulumi.RunError) as raised:
        plan_from_pulumi()
    assert "stacks/Pulumi.prod.yaml: leanrag:modelHubToken" in str(raised.value)
    assert "hf_plain" not in str(raised.value)


def test_bad_config_stops_before_any_resource(tmp_path) -> None:
    mocks = start("prod", edited(stack_raw("prod"), "gpuPool.gpu", "TPU"))
    with pytest.raises(pulumi.RunError) as raised:
        plan_from_pulumi()
    assert "leanrag:gpuPool.gpu = 'TPU'" in str(raised.value)
    assert mocks.resources == []


def test_workload_that_does_not_fit_stops_with_the_fix() -> None:
    start("prod", edited(stack_raw("prod"), "workload.concurrentUsers", 5000))
    with pytest.raises(pulumi.RunError) as raised:
        plan_from_pulumi()
    assert "smallest fix: raise gpuPool.maxNodes" in str(raised.value)


def test_local_stack_is_refused_by_pulumi() -> None:
    start("local", stack_raw("local"))
    with pytest.raises(pulumi.RunError, match="leanrag local up"):
        plan_from_pulumi()


def test_outputs_carry_the_plan() -> None:
    start("prod", stack_raw("prod"))
    plan = plan_from_pulumi()
    outputs = deploy(plan)
    assert outputs["vllmArgs"] == plan.vllm.as_cli()
    assert outputs["gpus"] == plan.sizing.gpus
    assert outputs["plan"]["stack"] == "prod"


def test_the_program_directory_runs_as_pulumi_runs_it(monkeypatch) -> None:
    # Pulumi executes `main: infra/` as a directory (runpy); this is that exact path.
    import runpy

    from infra.stack_source import PROJECT_ROOT

    exported: dict[str, object] = {}
    monkeypatch.setattr(pulumi, "export", lambda name, value: exported.__setitem__(name, value))
    start("staging", stack_raw("staging"))
    runpy.run_path(str(PROJECT_ROOT / "infra"), run_name="__main__")
    assert exported["vllmArgs"] == build_plan(load_stack("staging"), "staging").vllm.as_cli()
    assert set(exported) >= {"plan", "replicas", "gpus", "costPerRequestUsd"}
