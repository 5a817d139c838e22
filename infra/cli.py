"""`leanrag` command line. Exit codes: 0 ok, 2 bad configuration, 3 workload does not fit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infra.errors import ConfigError
from infra.plan import DeploymentPlan, build_plan
from infra.render import RenderError, render_stack
from infra.report import plot_plan, write_plan
from infra.stack_source import ProjectNotFound, find_stacks_dir, load_stack

EXIT_OK, EXIT_BAD_CONFIG, EXIT_DOES_NOT_FIT = 0, 2, 3

app = typer.Typer(
    help="Lean RAG Accelerator: size, plan and gate a RAG deployment.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(soft_wrap=True)  # long lines (vLLM args, paths) stay whole
errors = Console(stderr=True, soft_wrap=True)


@app.callback()
def main() -> None:
    """Lean RAG Accelerator."""


@app.command()
def plan(
    stack: Annotated[str, typer.Option(help="Stack name: stacks/Pulumi.<stack>.yaml")] = "local",
    stacks_dir: Annotated[
        Path | None,
        typer.Option(help="Folder holding the stack files (default: the project you are in)"),
    ] = None,
    output: Annotated[
        list[Path] | None, typer.Option(help="Write the plan to FILE.json or FILE.md (repeatable)")
    ] = None,
    plot: Annotated[Path | None, typer.Option(help="Draw capacity figures to FILE.png")] = None,
) -> None:
    """Print the sizing, cost and vLLM arguments the stack's plan decides."""
    deployment = _plan_or_exit(stack, stacks_dir)
    for path in output or []:
        if path.suffix not in (".json", ".md"):
            errors.print(f"[bold red]--output {path}[/]: use a .json or .md file name")
            raise typer.Exit(EXIT_BAD_CONFIG)
    _print_plan(deployment)
    for path in output or []:
        write_plan(deployment, path)
        console.print(f"wrote {path}")
    if plot is not None:
        plot_plan(deployment, plot)
        console.print(f"wrote {plot}")
    if not deployment.fits:
        raise typer.Exit(EXIT_DOES_NOT_FIT)


@app.command()
def render(
    stack: Annotated[str, typer.Option(help="Stack name: stacks/Pulumi.<stack>.yaml")],
    out: Annotated[Path, typer.Option(help="Folder to write the manifests to (replaced)")],
    stacks_dir: Annotated[
        Path | None,
        typer.Option(help="Folder holding the stack files (default: the project you are in)"),
    ] = None,
) -> None:
    """Write every manifest the stack would apply, one file per resource, for GitOps/review."""
    deployment = _plan_or_exit(stack, stacks_dir)
    if deployment.platform == "local":
        errors.print(f"stack {stack} is the local stack: it has no cluster manifests")
        raise typer.Exit(EXIT_BAD_CONFIG)
    if not deployment.fits:
        _print_problems(deployment)
        raise typer.Exit(EXIT_DOES_NOT_FIT)
    try:
        files = render_stack(deployment, out)
    except RenderError as error:
        errors.print(f"[bold red]render[/] {error}", highlight=False)
        raise typer.Exit(EXIT_BAD_CONFIG) from None
    console.print(f"wrote {len(files)} manifests for stack {stack} to {out}")


GATE_EXIT_CODES = {"pass": 0, "fail": 1, "could-not-measure": 2}


@app.command()
def gate(
    stack: Annotated[str, typer.Option(help="Stack name: stacks/Pulumi.<stack>.yaml")],
    result: Annotated[
        Path | None, typer.Option(help="gate.json to read (default: the cluster's ConfigMap)")
    ] = None,
    stacks_dir: Annotated[
        Path | None,
        typer.Option(help="Folder holding the stack files (default: the project you are in)"),
    ] = None,
) -> None:
    """Block a release on the benchmark gate: exit 0 pass, 1 fail, 2 not measured."""
    import json
    import shutil
    import subprocess

    from infra.builders.benchmark import RESULT_CONFIGMAP

    deployment = _plan_or_exit(stack, stacks_dir)
    if result is not None:
        text = result.read_text() if result.is_file() else ""
        where = str(result)
    else:
        kubectl = shutil.which("kubectl") or shutil.which("oc")
        if kubectl is None:
            errors.print("gate: no kubectl/oc on PATH; pass --result gate.json instead")
            raise typer.Exit(2)
        namespace = deployment.namespaces.serving
        completed = subprocess.run(
            [
                kubectl,
                "get",
                "configmap",
                RESULT_CONFIGMAP,
                "-n",
                namespace,
                "-o",
                "jsonpath={.data.gate\\.json}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        text = completed.stdout if completed.returncode == 0 else ""
        where = f"configmap {namespace}/{RESULT_CONFIGMAP}"
    if not text.strip():
        errors.print(f"gate: no result in {where}: has the gate Job run?")
        raise typer.Exit(2)
    document = json.loads(text)
    verdict = document.get("verdict", "could-not-measure")
    console.print(
        f"gate for stack {stack}: [bold]{verdict}[/] — {document.get('reason', '')}",
        highlight=False,
    )
    for check in document.get("checks", []):
        mark = "pass" if check["passed"] else "[red]FAIL[/]"
        console.print(
            f"  {mark}  {check['name']}: {check['measured']:.3f} (target {check['target']})",
            highlight=False,
        )
    raise typer.Exit(GATE_EXIT_CODES.get(verdict, 2))


def _stacks_or_exit(stacks_dir: Path | None) -> Path:
    """--stacks-dir, or the stack folder of the project around the working directory."""
    if stacks_dir is not None:
        return stacks_dir
    try:
        return find_stacks_dir()
    except ProjectNotFound as error:
        errors.print(f"[bold red]no project[/]: {error}", highlight=False)
        raise typer.Exit(EXIT_BAD_CONFIG) from None


def _plan_or_exit(stack: str, stacks_dir: Path | None) -> DeploymentPlan:
    stacks_dir = _stacks_or_exit(stacks_dir)
    try:
        return build_plan(load_stack(stack, stacks_dir), stack)
    except ConfigError as error:
        errors.print(f"[bold red]bad configuration[/] {error.message}", highlight=False)
        raise typer.Exit(EXIT_BAD_CONFIG) from None


def _print_problems(plan: DeploymentPlan) -> None:
    for problem in plan.problems:
        errors.print(
            f"[bold red]does not fit:[/] {problem.what}\n  smallest fix: {problem.fix}",
            highlight=False,
        )


def _print_plan(plan: DeploymentPlan) -> None:
    sizing, replica = plan.sizing, plan.sizing.replica
    title = f"Stack {plan.stack}: {plan.model.name} ({plan.model.quantization}) on {plan.pool.gpu}"
    if plan.model.random_weights:
        title += " [yellow](random-weight model)[/]"
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("quantity")
    table.add_column("optimized", justify="right")
    table.add_column("stock vLLM bf16", justify="right")
    baseline = plan.baseline
    rows = [
        (
            "weights per GPU (GiB)",
            f"{replica.memory.weights_gib_per_gpu:.1f}",
            f"{baseline.replica.memory.weights_gib_per_gpu:.1f}",
        ),
        (
            "KV cache per token (bytes)",
            f"{replica.kv_cache_bytes_per_token:,}",
            f"{baseline.replica.kv_cache_bytes_per_token:,}",
        ),
        (
            "KV-cache tokens per replica",
            f"{replica.memory.kv_cache_tokens:,}",
            f"{baseline.replica.memory.kv_cache_tokens:,}",
        ),
        (
            "concurrency per replica (KV / ITL)",
            f"{replica.concurrency} ({replica.kv_concurrency}/{replica.slo_concurrency})",
            f"{baseline.replica.concurrency} ({baseline.replica.kv_concurrency}/"
            f"{baseline.replica.slo_concurrency})",
        ),
        (
            "replicas × TP = GPUs",
            f"{sizing.replicas} × {replica.knobs.tensor_parallel_size} = {sizing.gpus}",
            f"{baseline.replicas} × {baseline.replica.knobs.tensor_parallel_size} = "
            f"{baseline.gpus}",
        ),
        ("ITL p95 (ms)", f"{sizing.load.itl_p95_ms:.1f}", f"{baseline.load.itl_p95_ms:.1f}"),
        (
            "TTFT on an idle replica (ms)",
            f"{sizing.load.ttft_unloaded_ms:.0f}",
            f"{baseline.load.ttft_unloaded_ms:.0f}",
        ),
        (
            "decode ceiling, batch 1 (tok/s)",
            f"{replica.batch1_tokens_per_s:.0f}",
            f"{baseline.replica.batch1_tokens_per_s:.0f}",
        ),
        (
            "throughput at load (req/s)",
            f"{sizing.requests_per_s:.2f}",
            f"{baseline.requests_per_s:.2f}",
        ),
        (
            "cost per hour (USD)",
            f"{sizing.cost_per_hour_usd:.2f}",
            f"{baseline.cost_per_hour_usd:.2f}",
        ),
        (
            "cost per request (USD)",
            f"{sizing.cost_per_request_usd:.5f}",
            f"{baseline.cost_per_request_usd:.5f}",
        ),
        (
            "cost per 1M output tokens (USD)",
            f"{sizing.cost_per_million_output_tokens_usd:.2f}",
            f"{baseline.cost_per_million_output_tokens_usd:.2f}",
        ),
    ]
    for row in rows:
        table.add_row(*row)
    console.print(table)
    comparison = plan.comparison
    if comparison.throughput_per_gpu_ratio is not None:
        throughput, cost = comparison.throughput_per_gpu_ratio, comparison.cost_per_request_ratio
        console.print(
            f"Optimized vs stock at equal SLO: [bold]{throughput:.2f}×[/] throughput per GPU, "
            f"[bold]{cost:.2f}×[/] cost per request"
        )
    environment = " ".join(f"{k}={v}" for k, v in plan.vllm.environment().items())
    console.print("vLLM:", environment, " ".join(plan.vllm.as_cli()), highlight=False)
    autoscaling, gate = plan.autoscaling, plan.gate
    console.print(
        f"Autoscaling ({'KEDA' if autoscaling.enabled else 'off'}): "
        f"{autoscaling.min_replicas}–{autoscaling.max_replicas} replicas; gate: TTFT p95 ≤ "
        f"{gate.ttft_p95_ms:g} ms, ITL p95 ≤ {gate.itl_p95_ms:g} ms, ≥ "
        f"{gate.min_throughput_rps:g} req/s; capacity at the SLO predicted "
        f"{gate.capacity_requests_per_s:.2f} req/s at {gate.capacity_concurrency} in flight "
        f"(limited by {gate.capacity_limited_by}) ±{gate.capacity_tolerance:.0%}",
        highlight=False,
    )
    if plan.fits:
        console.print("[bold green]fits[/]")
    for problem in plan.problems:
        errors.print(
            f"[bold red]does not fit:[/] {problem.what}\n  smallest fix: {problem.fix}",
            highlight=False,
        )


local_app = typer.Typer(help="The whole blueprint on this machine, as local processes.")
app.add_typer(local_app, name="local")
EXIT_GATE_FAILED, EXIT_STEP_FAILED, EXIT_INTERRUPTED = 1, 2, 130


@local_app.command("up")
def local_up(
    stack: Annotated[str, typer.Option(help="Stack name: stacks/Pulumi.<stack>.yaml")] = "local",
    stacks_dir: Annotated[
        Path | None,
        typer.Option(help="Folder holding the stack files (default: the project you are in)"),
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Run folder (default out/local/<stack>)")
    ] = None,
    model: Annotated[
        Path | None, typer.Option(help="Local model folder (default: the stack's tiny model)")
    ] = None,
    documents: Annotated[Path | None, typer.Option(help="Documents to ingest")] = None,
    question: Annotated[str | None, typer.Option(help="Question for the RAG check")] = None,
    vllm_port: Annotated[int, typer.Option(help="vLLM port on 127.0.0.1")] = 8000,
    embeddings_port: Annotated[int, typer.Option(help="Embeddings port on 127.0.0.1")] = 8001,
    llama_stack_port: Annotated[int, typer.Option(help="Llama Stack port on 127.0.0.1")] = 8321,
    benchmark_seconds: Annotated[
        int | None,
        typer.Option(help="run each gate level this long (default: until its request count)"),
    ] = None,
    stop_after: Annotated[
        bool, typer.Option("--stop-after", help="Stop the servers when the run is done")
    ] = False,
) -> None:
    """Run the stack's plan locally: model, compression, vLLM, ingestion, Llama Stack, gate."""
    from infra.local.stack import (
        DEFAULT_QUESTION,
        SAMPLE_CORPUS,
        Environments,
        LocalStack,
        LocalStackError,
        Options,
        Ports,
    )
    from infra.stack_source import PROJECT_ROOT

    deployment = _plan_or_exit(stack, stacks_dir)
    config = load_stack(stack, _stacks_or_exit(stacks_dir))
    if deployment.platform != "local":
        errors.print(f"[bold red]--stack {stack}[/]: is a {deployment.platform} stack; use local")
        raise typer.Exit(EXIT_BAD_CONFIG)
    options = Options(
        run_dir=(run_dir or PROJECT_ROOT / "out" / "local" / stack).resolve(),
        ports=Ports(vllm_port, embeddings_port, llama_stack_port),
        model_dir=model,
        documents=documents or SAMPLE_CORPUS,
        question=question or DEFAULT_QUESTION,
        benchmark_seconds=benchmark_seconds,
        stop_after=stop_after,
    )

    def progress(step: str, event: str, seconds: float, note: str) -> None:
        if event == "start":
            console.print(f"[bold]▶ {step}[/] {note}".rstrip())
        elif event == "reused":
            console.print(f"  ↺ {step}: reused from the last run {note}".rstrip())
        else:
            console.print(f"  ✔ {step}: {seconds:.1f} s {note}".rstrip())

    local = LocalStack(deployment, options, Environments.default(), progress, config)
    try:
        summary = local.up()
    except KeyboardInterrupt:
        errors.print("interrupted: every process this run started is stopped")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except LocalStackError as error:
        errors.print(
            f"[bold red]local stack failed[/]: {error}\nevery process it started is stopped"
        )
        raise typer.Exit(EXIT_STEP_FAILED) from None
    except Exception:
        # Exit 1 means "the gate failed": an unexpected error must not read as a verdict.
        errors.print_exception()
        errors.print("[bold red]local stack failed[/]: every process it started is stopped")
        raise typer.Exit(EXIT_STEP_FAILED) from None
    model_info = summary["model"]
    if model_info["random_weights"]:
        console.print(
            f"[yellow]model {model_info['name']} has RANDOM WEIGHTS: speed and memory are real, "
            "answers are not[/]"
        )
    console.print(f"RAG answer: {summary['rag']['answer'][:200]!r}")
    for citation in summary["rag"]["citations"]:
        console.print(f"  [{citation['number']}] {citation['source']}")
    gate = summary["gate"]
    console.print(f"gate: [bold]{gate['status']}[/] — {gate['reason']} ({gate['report']})")
    console.print(f"done in {summary['wall_seconds']} s; summary in {options.run_dir}/summary.md")
    if not stop_after:
        endpoints = ", ".join(f"{k} {v}" for k, v in summary["endpoints"].items())
        console.print(f"running: {endpoints}\nstop with: leanrag local down --stack {stack}")
    if gate["exit_code"] != 0:
        raise typer.Exit(EXIT_GATE_FAILED)


@local_app.command("down")
def local_down(
    stack: Annotated[str, typer.Option(help="Stack name")] = "local",
    run_dir: Annotated[
        Path | None, typer.Option(help="Run folder (default out/local/<stack>)")
    ] = None,
) -> None:
    """Stop every server `leanrag local up` left running."""
    from infra.local.stack import down
    from infra.stack_source import PROJECT_ROOT

    stopped = down((run_dir or PROJECT_ROOT / "out" / "local" / stack).resolve())
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
