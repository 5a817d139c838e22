"""`leanrag local up`: the local stack's deployment plan run as processes on this machine.

Steps, in order (each shows progress and its wall time; logs go to one run folder):
  model → quantize → serve (vLLM starts) → embeddings → llama-stack → ingest (Docling →
  Milvus Lite → Llama Stack) → rag (one answer through Llama Stack) → benchmark (GuideLLM +
  the gate) → report.
A step whose inputs have not changed since it last finished is reused. Servers run in their
own process groups, recorded in `pids.json`; a failing step or Ctrl-C stops all of them, and
`leanrag local down` stops what an earlier `up` left running.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.builders.benchmark import QUALITY_REFERENCE, gate_plan_json
from infra.builders.serving import quality_args
from infra.calibration import SpeedProbe, calibrate
from infra.catalog import MODEL_PRESETS
from infra.config import StackConfig
from infra.load_model import served_knobs
from infra.local import processes
from infra.local.llama_stack import command as llama_stack_command
from infra.local.llama_stack import local_run_config, prepare_tiktoken_cache
from infra.plan import DeploymentPlan, accelerator_for, repredict_gate
from infra.stack_source import PROJECT_ROOT
from workloads.vllm_plugin import write_plugin_folder

SAMPLE_CORPUS = PROJECT_ROOT / "workloads" / "ingest" / "sample_corpus"


def model_cache() -> Path:
    """Where locally trained tiny models are kept by content hash (shared by runs and tests)."""
    return Path(os.environ.get("LEANRAG_MODEL_CACHE", PROJECT_ROOT / ".cache" / "models"))


EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_DIMENSION = 384
COLLECTION = "leanrag_docs"
DEFAULT_QUESTION = "How many loggers can one Heron gateway handle?"
STEPS = ("model", "quantize", "serve", "embeddings", "llama-stack", "ingest", "rag",
         "speed-probe", "benchmark", "report")  # fmt: skip
# The speed probe: the plan's traffic at 1 stream and at this many times the planned users,
# each level measuring this many requests after warm-up.
PROBE_LOAD_FACTOR = 4
PROBE_REQUESTS = 40


class LocalStackError(RuntimeError):
    """A step failed; the message names the step, what went wrong and its log."""


@dataclass(frozen=True)
class Ports:
    vllm: int = 8000
    embeddings: int = 8001
    llama_stack: int = 8321


@dataclass(frozen=True)
class Environments:
    """Python interpreters of the separate environments (separate images in a cluster)."""

    workloads: Path
    vllm: Path
    llama_stack: Path

    @classmethod
    def default(cls) -> Environments:
        def pick(variable: str, folder: str) -> Path:
            return Path(os.environ.get(variable) or PROJECT_ROOT / folder / "bin" / "python")

        return cls(
            workloads=pick("LEANRAG_WORKLOADS_PYTHON", ".venv-workloads"),
            vllm=pick("LEANRAG_VLLM_PYTHON", ".venv-vllm"),
            llama_stack=pick("LEANRAG_LLAMA_STACK_PYTHON", ".venv-llamastack"),
        )

    def check(self) -> None:
        missing = [str(p) for p in (self.workloads, self.vllm, self.llama_stack) if not p.exists()]
        if missing:
            raise LocalStackError(
                f"missing environments: {', '.join(missing)}; run `make local` once "
                "(it installs them), or point LEANRAG_*_PYTHON at yours"
            )


@dataclass
class Options:
    run_dir: Path
    ports: Ports = field(default_factory=Ports)
    model_dir: Path | None = None
    documents: Path = SAMPLE_CORPUS
    question: str = DEFAULT_QUESTION
    # None: each level runs until its steady-state request count (the gate's default).
    benchmark_seconds: int | None = None
    stop_after: bool = False


# Called as each step starts and ends: (step, "start" | "done" | "reused", seconds, note).
Progress = Callable[[str, str, float, str], None]


class LocalStack:
    def __init__(
        self,
        plan: DeploymentPlan,
        options: Options,
        environments: Environments,
        progress: Progress | None = None,
        config: StackConfig | None = None,
    ) -> None:
        self.plan = plan
        # With the validated stack, the gate's prediction is re-planned from a speed probe of
        # this machine (`_calibrate`); without it, from the catalog's figures.
        self.config = config
        self.options = options
        self.env = environments
        self.run_dir = options.run_dir
        self.logs = self.run_dir / "logs"
        self.progress = progress or (lambda *_: None)
        self.state_file = self.run_dir / "state.json"
        self.state: dict[str, Any] = (
            json.loads(self.state_file.read_text()) if self.state_file.exists() else {}
        )
        self.pids_file = self.run_dir / "pids.json"
        self.servers: dict[str, processes.Server] = {}
        self.timings: dict[str, float] = {}
        self.artefacts: dict[str, Any] = {}

    # --- plumbing -----------------------------------------------------------------------

    def _url(self, port: int, path: str = "") -> str:
        return f"http://127.0.0.1:{port}{path}"

    def _record_pids(self) -> None:
        recorded = json.loads(self.pids_file.read_text()) if self.pids_file.exists() else {}
        recorded.update({name: server.pid for name, server in self.servers.items()})
        self.pids_file.write_text(json.dumps(recorded, indent=2))

    def _run(self, step: str, command: list[str], env: dict[str, str] | None = None) -> None:
        log = self.logs / f"{step}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("wb") as handle:  # this run's log: its tail explains a failure
            result = subprocess.run(
                command,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=PROJECT_ROOT,
                check=False,
            )
        if result.returncode != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-12:])
            raise LocalStackError(
                f"step {step} failed (exit {result.returncode}); log {log}:\n{tail}"
            )

    def _start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        server = processes.start(name, command, self.logs / f"{name}.log", env, PROJECT_ROOT)
        self.servers[name] = server
        self._record_pids()

    def _step(self, name: str, fingerprint: dict[str, Any], action: Callable[[], dict]) -> dict:
        """Run `action` unless the same inputs already finished; remember its artefacts."""
        key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()
        previous = self.state.get(name)
        started = time.perf_counter()
        if previous and previous["fingerprint"] == key and _exists(previous["artefacts"]):
            self.progress(name, "reused", 0.0, "")
            self.timings[name] = 0.0
            self.artefacts[name] = previous["artefacts"]
            return previous["artefacts"]
        self.progress(name, "start", 0.0, "")
        artefacts = action()
        seconds = round(time.perf_counter() - started, 1)
        self.timings[name] = seconds
        self.artefacts[name] = artefacts
        self.state[name] = {"fingerprint": key, "artefacts": artefacts, "seconds": seconds}
        self.state_file.write_text(json.dumps(self.state, indent=2))
        self.progress(name, "done", seconds, "")
        return artefacts

    def stop_servers(self) -> list[str]:
        for server in reversed(list(self.servers.values())):
            server.stop()
        stopped = list(self.servers)
        self.servers.clear()
        stopped += processes.stop_recorded(self.pids_file)
        return sorted(set(stopped))

    # --- steps ----------------------------------------------------------------------------

    def up(self) -> dict[str, Any]:
        self.env.check()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        processes.stop_recorded(self.pids_file)  # servers of an earlier run: start fresh
        started = time.perf_counter()
        try:
            summary = self._up()
        except BaseException:
            self.stop_servers()
            raise
        summary["wall_seconds"] = round(time.perf_counter() - started, 1)
        summary["servers_stopped"] = self.options.stop_after
        if self.options.stop_after:
            self.stop_servers()
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        (self.run_dir / "summary.md").write_text(summary_markdown(summary))
        return summary

    def _up(self) -> dict[str, Any]:
        plan, env, ports = self.plan, self.env, self.options.ports
        model_dir = self._model()
        checkpoint = self._quantize(model_dir)
        served = plan.vllm.served_model_name
        vllm_args = [
            str(env.vllm), "-m", "vllm.entrypoints.openai.api_server",
            "--model", checkpoint, "--served-model-name", served,
            "--host", "127.0.0.1", "--port", str(ports.vllm), *plan.vllm.server_args(),
        ]  # fmt: skip
        vllm_env = {**plan.vllm.environment(), "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
        if plan.vllm.loads_plugin:  # the folder the cluster mounts from a ConfigMap
            folder = write_plugin_folder(self.run_dir.resolve() / "vllm-plugins")
            vllm_env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p
            )
        self.progress("serve", "start", 0.0, "vLLM starting (ready is awaited before `rag`)")
        serve_started = time.perf_counter()
        # On a CPU host vLLM keeps off the last core: the gate's load generator runs there, as
        # a cluster gives the gate Job its own node (processes.all_cores_but_last).
        pinned = [] if plan.pool.is_gpu else processes.all_cores_but_last()
        self._start("vllm", [*pinned, *vllm_args], vllm_env)
        self._start(
            "embeddings",
            [str(env.workloads), "-m", "workloads.ingest.embed_server", "--port",
             str(ports.embeddings), "--name", EMBEDDING_MODEL],
        )  # fmt: skip
        self._timed("embeddings", lambda: self.servers["embeddings"].wait_until_ready(
            self._url(ports.embeddings, "/health"), 180))  # fmt: skip
        self._timed("llama-stack", lambda: self._llama_stack(served))
        ingest = self._ingest()
        self.servers["vllm"].wait_until_ready(self._url(ports.vllm, "/health"), 900)
        self.timings["serve"] = round(time.perf_counter() - serve_started, 1)
        self.progress("serve", "done", self.timings["serve"], f"vLLM on {self._url(ports.vllm)}")
        answer = self._timed("rag", lambda: self._rag(served))
        gate_plan, calibration = self._timed("speed-probe", lambda: self._calibrate(checkpoint))
        gate = self._timed("benchmark", lambda: self._benchmark(checkpoint, gate_plan))
        return {
            "stack": plan.stack,
            "machine": _machine(),
            "command": shlex.join(["leanrag", *sys.argv[1:]]),
            "model": {
                "name": plan.model.name,
                "path": str(model_dir),
                "random_weights": self._random_weights(model_dir),
                "checkpoint": checkpoint,
                "scheme": plan.model.quantization,
                "quality": _checkpoint_quality(checkpoint),
            },
            "vllm_args": plan.vllm.server_args(),
            "endpoints": {
                "vllm": self._url(ports.vllm, "/v1"),
                "embeddings": self._url(ports.embeddings, "/v1"),
                "llama_stack": self._url(ports.llama_stack),
            },
            "ingest": ingest,
            "rag": answer,
            "gate": gate,
            "calibration": calibration,
            "predicted_capacity_at_slo": {
                "concurrency": gate_plan.gate.capacity_concurrency,
                "requests_per_s": gate_plan.gate.capacity_requests_per_s,
                "limited_by": gate_plan.gate.capacity_limited_by,
            },
            "steps_seconds": self.timings,
            "run_dir": str(self.run_dir),
        }

    def _timed(self, name: str, action: Callable[[], Any]) -> Any:
        self.progress(name, "start", 0.0, "")
        started = time.perf_counter()
        result = action()
        self.timings[name] = round(time.perf_counter() - started, 1)
        self.progress(name, "done", self.timings[name], "")
        return result

    def _random_weights(self, model_dir: Path) -> bool:
        marker = model_dir / "leanrag.json"
        return bool(marker.exists() and json.loads(marker.read_text()).get("random_weights"))

    def _model(self) -> Path:
        if self.options.model_dir:
            model_dir = self.options.model_dir.resolve()
            if not (model_dir / "config.json").exists():
                raise LocalStackError(
                    f"--model {model_dir}: no config.json; give a Hugging Face model folder"
                )
            self.timings["model"] = 0.0
            self.progress("model", "reused", 0.0, str(model_dir))
            return model_dir
        trained = self.plan.model.trained_locally
        if not (self.plan.model.random_weights or trained):
            raise LocalStackError(
                f"model {self.plan.model.name} is not built locally: pass --model DIR with its "
                "weights (nothing is downloaded)"
            )
        target = self.run_dir / "model"

        def build() -> dict:
            shutil.rmtree(target, ignore_errors=True)
            python = str(self.env.workloads)
            preset = self.plan.model.name
            architecture = json.dumps(dataclasses.asdict(MODEL_PRESETS[preset].architecture))
            # Trained once per content hash (minutes on CPU), then copied from the cache.
            training = ["--train", "--cache", str(model_cache())] if trained else []
            self._run("model", [python, "-m", "workloads.models", "--architecture", architecture,
                                "--name", preset, "--out", str(target), *training])  # fmt: skip
            return {"path": str(target)}

        # The tokenizer kind is part of the fingerprint: a run folder from before the BPE
        # tokenizer holds a word-level model whose prompts reach vLLM empty.
        fingerprint = {
            "preset": self.plan.model.name,
            "tokenizer": "byte-level-bpe",
            "trained": trained,
        }
        artefacts = self._step("model", fingerprint, build)
        return Path(artefacts["path"])

    def _quantize(self, model_dir: Path) -> str:
        scheme = self.plan.model.quantization
        if scheme == "none":
            return str(model_dir)
        output = self.run_dir / f"checkpoint-{scheme}"
        # INT8/W4A16 are fitted on real text. As in the cluster (serving.calibrationUri), the
        # calibration set is its own, not --documents: here the sample corpus.
        calibration = SAMPLE_CORPUS

        # Quality through the serving kernels: vLLM's environment scores both models. The run
        # folder is the stack's own: a checkpoint of other inputs there is replaced.
        quality = [*quality_args(self.plan), "--scorer", str(self.env.vllm), "--replace"]

        def compress() -> dict:
            self._run("quantize", [str(self.env.workloads), "-m", "workloads.quantize",
                                   "--model", str(model_dir), "--output", str(output),
                                   "--scheme", scheme,
                                   "--calibration", str(calibration), *quality])  # fmt: skip
            return {"path": str(output)}

        fingerprint = {"model": str(model_dir), "scheme": scheme, "config": _digest(model_dir),
                       "calibration": str(calibration), "quality": quality}  # fmt: skip
        return self._step("quantize", fingerprint, compress)["path"]

    def _llama_stack(self, served: str) -> None:
        ports, state = self.options.ports, self.run_dir / "llama-stack"
        shutil.rmtree(state, ignore_errors=True)  # its registry is rebuilt from the ledger
        state.mkdir(parents=True)
        config = state / "run.yaml"
        config.write_text(
            local_run_config(
                inference_url=self._url(ports.vllm, "/v1"),
                model=served,
                max_tokens=self.plan.workload.output_tokens * 4,
                embedding_url=self._url(ports.embeddings, "/v1"),
                embedding_model=EMBEDDING_MODEL,
                embedding_dimension=EMBEDDING_DIMENSION,
                milvus_db=state / "milvus.db",
                state_dir=state,
                port=ports.llama_stack,
            )
        )
        cache = prepare_tiktoken_cache(self.env.llama_stack, self.run_dir / "tiktoken")
        self._start(
            "llama-stack",
            llama_stack_command(self.env.llama_stack, config, ports.llama_stack),
            {"TIKTOKEN_CACHE_DIR": str(cache)},
        )
        self.servers["llama-stack"].wait_until_ready(
            self._url(ports.llama_stack, "/v1/health"), 300
        )

    def _ingest(self) -> dict[str, Any]:
        summary = self.run_dir / "ingest-summary.json"
        self._timed("ingest", lambda: self._run("ingest", [
            str(self.env.workloads), "-m", "workloads.ingest",
            "--source", str(self.options.documents),
            "--milvus-uri", str(self.run_dir / "milvus" / "ledger.db"),
            "--collection", COLLECTION, "--no-progress", "--delete-missing",
            "--summary-json", str(summary),
            "--llama-stack-url", self._url(self.options.ports.llama_stack),
            "--llama-stack-embedding-model", f"embeddings/{EMBEDDING_MODEL}",
        ]))  # fmt: skip
        return json.loads(summary.read_text())

    def _rag(self, served: str) -> dict[str, Any]:
        out = self.run_dir / "rag-answer.json"
        self._run("rag", [
            str(self.env.workloads), "-m", "workloads.rag.answer",
            "--llama-stack", self._url(self.options.ports.llama_stack),
            "--model", f"vllm/{served}", "--question", self.options.question,
            "--vector-store-name", COLLECTION,
            "--max-tokens", str(self.plan.workload.output_tokens), "--out", str(out),
            # As many chunks as the plan's context holds: the prompt is the shape it sized.
            "-k", str(max(1, self.plan.workload.context_tokens // self.plan.rag.chunk_tokens)),
        ])  # fmt: skip
        return json.loads(out.read_text())

    def _calibrate(self, checkpoint: str) -> tuple[DeploymentPlan, dict[str, Any]]:
        """Speed probe → this machine's figures → the plan the gate holds it to."""
        if self.config is None:
            return self.plan, {"source": "catalog (no stack config given)"}
        plan_file = self.run_dir / "probe-plan.json"
        plan_file.write_text(gate_plan_json(self.plan))
        out = self.run_dir / "speed-probe"
        shutil.rmtree(out, ignore_errors=True)
        loaded = PROBE_LOAD_FACTOR * max(self.plan.gate.concurrency, 1)
        self._run("speed-probe", [
            str(self.env.workloads), "-m", "workloads.benchmark", "--plan", str(plan_file),
            "--target", self._url(self.options.ports.vllm), "--out", str(out),
            "--tokenizer", checkpoint, "--speed-probe", str(out / "probe.json"),
            "--concurrency", "1", str(loaded), "--min-requests", str(PROBE_REQUESTS),
        ])  # fmt: skip
        levels = json.loads((out / "probe.json").read_text())["levels"]
        lone, busy = levels[0], levels[-1]
        probe = SpeedProbe(
            prompt_tokens=round(lone["prompt_tokens_mean"]),
            lone_ttft_ms=lone["ttft_p50_ms"],
            lone_itl_ms=lone["itl_p50_ms"],
            loaded_concurrency=busy["concurrency"],
            loaded_itl_ms=busy["itl_p50_ms"],
        )
        base = accelerator_for(self.config)
        measured = calibrate(
            base,
            self.config.resolved_model.architecture,
            served_knobs(self.plan.sizing.replica.knobs, self.plan.vllm.max_num_seqs),
            probe,
            self.plan.workload,
        )
        plan = dataclasses.replace(self.plan, gate=repredict_gate(self.plan, self.config, measured))
        return plan, {
            "source": "speed probe (GuideLLM, count-bounded, plan's traffic)",
            "probe": dataclasses.asdict(probe),
            "step_overhead_ms": measured.step_overhead_ms,
            "sequence_overhead_ms": measured.sequence_overhead_ms,
            "compute_scale": measured.bf16_tflops / base.bf16_tflops,
            "report": str(out / "guidellm-speed-probe.json"),
        }

    def _benchmark(self, checkpoint: str, plan: DeploymentPlan) -> dict[str, Any]:
        plan_file = self.run_dir / "gate-plan.json"
        plan_file.write_text(gate_plan_json(plan))
        out = self.run_dir / "benchmark"
        shutil.rmtree(out, ignore_errors=True)
        command = [
            str(self.env.workloads), "-m", "workloads.benchmark", "--plan", str(plan_file),
            "--target", self._url(self.options.ports.vllm), "--out", str(out),
            "--tokenizer", checkpoint,
            # vLLM's own prefix-cache counters: each scenario cached, or not, as it means.
            "--metrics-url", self._url(self.options.ports.vllm, "/metrics"),
        ]  # fmt: skip
        if self.options.benchmark_seconds:
            command += ["--seconds", str(self.options.benchmark_seconds)]
        reference = Path(checkpoint) / QUALITY_REFERENCE
        if reference.is_file():  # the live quality check, as the cluster's gate Job runs it
            command += ["--quality-reference", str(reference)]
        if not plan.pool.is_gpu:
            # vLLM's CPU build often streams a request's tokens in bursts (a lone request's ITL
            # p50 measured 0.03-4.7 ms across runs): per-request TTFT and ITL are not the
            # scheduler's there, so no model predicts their joint attainment. The capacity
            # search and its prediction are held on GPUs; on the CPU the gate judges the
            # planned load, and its report says capacity was not measured.
            command.append("--skip-capacity-search")
        log = self.logs / "benchmark.log"
        with log.open("wb") as handle:  # this run's log: its tail explains a failure
            code = subprocess.run(
                command, stdout=handle, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, check=False
            ).returncode
        gate_file = out / "gate.json"
        if code not in (0, 1) or not gate_file.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-12:])
            raise LocalStackError(
                f"step benchmark could not measure (exit {code}); log {log}:\n{tail}"
            )
        document = json.loads(gate_file.read_text())
        return {
            "exit_code": code,
            "status": document["verdict"],
            "reason": document["reason"],
            "live_quality": document.get("live_quality"),
            "report": str(out / "gate.md"),
            "json": str(gate_file),
        }


def _checkpoint_quality(checkpoint: str) -> dict[str, Any] | None:
    """The quantize step's quality retention, from the checkpoint's manifest."""
    manifest = Path(checkpoint) / "leanrag-quantize.json"
    if not manifest.is_file():
        return None
    return json.loads(manifest.read_text()).get("quality")


def _machine() -> str:
    gpus = (
        shutil.which("nvidia-smi")
        and subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), " + (gpus or "no GPU")


def _exists(artefacts: dict[str, Any]) -> bool:
    return all(Path(v).exists() for k, v in artefacts.items() if k == "path")


def _digest(folder: Path) -> str:
    config = folder / "config.json"
    return hashlib.sha256(config.read_bytes()).hexdigest() if config.exists() else ""


def down(run_dir: Path) -> list[str]:
    """Stop every server a `leanrag local up` in `run_dir` left running."""
    return processes.stop_recorded(run_dir / "pids.json")


def _quality_lines(retention: dict | None, live: dict | None) -> list[str]:
    lines = []
    if retention and retention.get("measured"):
        lines.append(
            f"- quality ({retention['passages']} held-out passages, {retention['measured_by']}): "
            f"perplexity {retention['perplexity_source']:.2f} → "
            f"{retention['perplexity_compressed']:.2f}, KL {retention['kl_nats_per_token']:.5f} "
            f"nats/token, top-1 agreement {retention['top1_agreement']:.4f}"
        )
    if live:
        lines.append(
            f"- live quality check: served log-probabilities within "
            f"{live['mean_abs_delta_nats']:.4f} nats/token of the quantize step's "
            f"(tolerance {live['tolerance_nats']})"
        )
    return lines


def summary_markdown(summary: dict[str, Any]) -> str:
    model = summary["model"]
    label = (
        " — RANDOM WEIGHTS: answers and quality are meaningless" if model["random_weights"] else ""
    )
    gate = summary["gate"]
    lines = [
        f"# Local stack run ({summary['stack']})",
        "",
        f"- model: {model['name']}{label}; {model['scheme']} checkpoint {model['checkpoint']}",
        f"- ingest: {summary['ingest']['files']} files, {summary['ingest']['stored_chunks']} "
        f"chunks in Milvus Lite, published to Llama Stack",
        f"- rag: {len(summary['rag']['citations'])} chunks cited, first from "
        f"{summary['rag']['citations'][0]['source'] if summary['rag']['citations'] else '—'}",
        *_quality_lines(model.get("quality"), gate.get("live_quality")),
        f"- gate: **{gate['status']}** — {gate['reason']}",
        f"- wall time: {summary['wall_seconds']} s on {summary['machine']}",
        f"- command: `{summary['command']}`",
        "",
        "| step | seconds |",
        "| --- | --- |",
        *(f"| {step} | {seconds} |" for step, seconds in summary["steps_seconds"].items()),
        "",
    ]
    return "\n".join(lines)
