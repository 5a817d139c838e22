"""Latency under load: a small discrete-event simulation of vLLM's scheduler, closed loop.

The analytic speed model in `sizing` gives one replica's steady-state throughput; it cannot say
how long a request waits for its prefill when prompts are long. Here `concurrency` clients each
send a request, wait for its last token and send the next one (what GuideLLM's concurrent
profile and the gate do). Every engine step the scheduler, as vLLM V1 does with chunked
prefill, gives each running request its next piece in arrival order — one token to a decoding
request, the rest of the step budget (`max_num_batched_tokens`) to prompts being prefilled —
and admits waiting requests while the budget and `max_num_seqs` allow (a request sent after a
completion becomes visible `SCHEDULING_LAG_STEPS` steps later: asynchronous scheduling). A
step takes the roofline time of what it carries (`sizing.step_seconds`): its linear layers
(weights read once, or the batched tokens' matmuls computed, whichever is longer), then its
attention (every context's KV cache read, or the attention computed), plus the host's per-step
overhead.

Per request it records TTFT (arrival → the step that finishes its prompt) and its mean
inter-token latency, as GuideLLM measures them; the p95 of each over the steady-state requests
(the first wave is left out as warm-up) is what the gate's goodput search compares with.
Closed-loop traffic moves in waves (clients that started together finish together), so the
steady state spans at least `MEASURED_WAVES` whole waves, and the rate is Little's law over
it — clients / mean end-to-end latency — not completions over their own time span, which a
set shorter than a wave inflates (the burst of one wave's completions).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, replace

from infra.catalog import Accelerator, ModelArchitecture
from infra.sizing import ServingKnobs, StepCost, Workload

# Requests simulated after the warm-up wave: enough for a stable p95, few enough to stay fast,
# and never less than this many whole waves of the clients.
MEASURED_REQUESTS = 120
MEASURED_WAVES = 2
# vLLM V1 schedules asynchronously (on by default): while one step runs the next is already
# scheduled, and the step after that is scheduled as soon as the running one's outputs are
# processed — before the client that just got its last token can send its next request. A
# request arriving at the end of step N is first scheduled in step N + 3, two steps later than
# a synchronous scheduler. On the H200 (count-bounded gate levels) the simulated TTFT p50 moves
# from 0.20-0.25 s to 0.29-0.34 s for the plan's 2,048-token steps at prod's shape (0.34-0.41 s
# measured) and from 0.20 s to 0.61 s for stock's 8192-token steps at 2048/256 (0.99-1.60 s
# measured: stock's TTFT stays under-predicted, see test_sizing_calibration.py).
SCHEDULING_LAG_STEPS = 2
# Clients beyond this only queue (max-num-seqs is at most 4,096): a plan for more users per
# replica than that does not fit anyway, and the simulation must stay small.
MAX_CLIENTS = 8192
# A level meets the SLO when this share of its requests is within both targets (the gate's
# goodput search uses the same: a joint p95).
TARGET_ATTAINMENT = 0.95


@dataclass(frozen=True)
class LoadPoint:
    """One replica at `concurrency` requests in flight, in steady state."""

    concurrency: int
    requests_per_s: float
    ttft_p95_ms: float
    itl_p95_ms: float
    e2e_mean_ms: float
    ttft_p50_ms: float
    itl_p50_ms: float
    # Each steady-state request's (TTFT, mean ITL) in ms: attainment is judged per request.
    requests_ms: tuple[tuple[float, float], ...] = ()

    def attainment(self, ttft_target_ms: float, itl_target_ms: float) -> float:
        """Share of requests within both targets, as GuideLLM's goodput search scores it."""
        within = sum(1 for t, i in self.requests_ms if t <= ttft_target_ms and i <= itl_target_ms)
        return within / len(self.requests_ms) if self.requests_ms else 0.0

    def meets(self, ttft_target_ms: float, itl_target_ms: float) -> bool:
        return self.attainment(ttft_target_ms, itl_target_ms) >= TARGET_ATTAINMENT


@dataclass
class _Request:
    arrival: float
    prompt_left: int  # uncached prompt tokens still to prefill
    prompt_done: int  # context already in the KV cache (cached prefix + prefilled)
    first_token: float = 0.0


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(math.ceil(share * len(ordered)) - 1, 0))]


def simulate(
    architecture: ModelArchitecture,
    accelerator: Accelerator,
    knobs: ServingKnobs,
    workload: Workload,
    concurrency: int,
    measured_requests: int = MEASURED_REQUESTS,
    step_cost: type[StepCost] = StepCost,
) -> LoadPoint:
    """Closed-loop steady state of one replica with `concurrency` clients (`step_cost`: how
    a step is costed; a benchmark compares other ways of costing it)."""
    cached = (
        int(workload.context_tokens * workload.shared_prefix_share)
        if knobs.enable_prefix_caching
        else 0
    )
    uncached = max(workload.prompt_tokens - cached, 1)
    output = max(workload.output_tokens, 1)
    budget = (
        knobs.max_num_batched_tokens
        if knobs.enable_chunked_prefill
        else max(knobs.max_num_batched_tokens, knobs.max_model_len)
    )
    max_running = knobs.max_num_seqs or concurrency

    cost = step_cost.of(architecture, accelerator, knobs)

    def new(now: float) -> _Request:
        return _Request(now, uncached, cached)

    # Running requests are either prefilling (arrival order) or decoding: a decoding request
    # adds one token per step, so its finishing step is known when its prompt completes, and
    # the decoding context grows by one token per decoding request per step.
    waiting: deque[_Request] = deque(new(0.0) for _ in range(concurrency))
    # Requests sent after a completion, by the step from which the scheduler can see them.
    arriving: dict[int, list[_Request]] = {}
    prefilling: deque[_Request] = deque()
    finishing: dict[int, list[_Request]] = {}
    decoding = decode_context = running = 0
    now = 0.0
    step = finished = 0
    warmup = concurrency
    measured_requests = max(measured_requests, MEASURED_WAVES * concurrency)
    ttfts: list[float] = []
    itls: list[float] = []
    e2es: list[float] = []

    def complete(request: _Request) -> None:
        nonlocal finished
        finished += 1
        if finished > warmup:
            ttfts.append(request.first_token - request.arrival)
            itls.append((now - request.first_token) / max(output - 1, 1))
            e2es.append(now - request.arrival)
        arriving.setdefault(step + SCHEDULING_LAG_STEPS, []).append(new(now))

    while len(ttfts) < measured_requests:
        waiting.extend(arriving.pop(step, ()))
        # Decoding requests first, then prompts being prefilled in arrival order, then
        # admissions, within the step budget (vLLM V1 with chunked prefill).
        left = budget - decoding
        chunks: list[tuple[_Request, int]] = []
        for request in prefilling:
            if left <= 0:
                break
            take = min(request.prompt_left, left)
            chunks.append((request, take))
            left -= take
        while waiting and left > 0 and running < max_running:
            request = waiting.popleft()
            prefilling.append(request)
            running += 1
            take = min(request.prompt_left, left)
            chunks.append((request, take))
            left -= take
        now += cost.seconds(
            decoding, decode_context, [(take, request.prompt_done) for request, take in chunks]
        )
        step += 1
        decode_context += decoding
        for request in finishing.pop(step, ()):
            decoding -= 1
            decode_context -= request.prompt_done + output - 1
            running -= 1
            complete(request)
        for request, take in chunks:
            request.prompt_left -= take
            request.prompt_done += take
            if request.prompt_left:
                continue
            prefilling.remove(request)
            request.first_token = now  # the step that finishes a prompt samples a token
            if output == 1:
                running -= 1
                complete(request)
            else:
                decoding += 1
                decode_context += request.prompt_done
                finishing.setdefault(step + output - 1, []).append(request)
    e2e_mean = sum(e2es) / len(e2es)
    return LoadPoint(
        concurrency=concurrency,
        # Little's law: every client always has one request in flight.
        requests_per_s=concurrency / e2e_mean if e2e_mean > 0 else 0.0,
        ttft_p95_ms=_percentile(ttfts, 0.95) * 1e3,
        itl_p95_ms=_percentile(itls, 0.95) * 1e3,
        e2e_mean_ms=e2e_mean * 1e3,
        ttft_p50_ms=_percentile(ttfts, 0.5) * 1e3,
        itl_p50_ms=_percentile(itls, 0.5) * 1e3,
        requests_ms=tuple((t * 1e3, i * 1e3) for t, i in zip(ttfts, itls, strict=True)),
    )


@dataclass(frozen=True)
class SloCapacity:
    """The most requests in flight one replica serves with both latency targets met."""

    point: LoadPoint | None  # None: even one request misses a target
    limit: int  # the search's upper bound (KV cache / max-num-seqs / a queueing ceiling)
    limited_by: str  # "ttft", "itl", "both" or the ceiling's name


def capacity_at_slo(
    architecture: ModelArchitecture,
    accelerator: Accelerator,
    knobs: ServingKnobs,
    workload: Workload,
    ttft_target_ms: float,
    itl_target_ms: float,
    ceiling: int,
) -> SloCapacity:
    """Bisect concurrency in [1, ceiling] for the largest level meeting both targets."""

    def at(concurrency: int) -> LoadPoint:
        return simulate(architecture, accelerator, knobs, workload, concurrency)

    ceiling = max(ceiling, 1)
    top = at(ceiling)
    if top.meets(ttft_target_ms, itl_target_ms):
        return SloCapacity(top, ceiling, "ceiling")
    one = at(1) if ceiling > 1 else top
    if not one.meets(ttft_target_ms, itl_target_ms):
        return SloCapacity(None, ceiling, _missed(one, ttft_target_ms, itl_target_ms))
    low, high, best, failing = 1, ceiling, one, top
    # Stop within 5 %: the gate's own search stops within 10 %.
    while high - low > max(1, int(0.05 * low)):
        middle = (low + high) // 2
        point = at(middle)
        if point.meets(ttft_target_ms, itl_target_ms):
            low, best = middle, point
        else:
            high, failing = middle, point
    return SloCapacity(best, ceiling, _missed(failing, ttft_target_ms, itl_target_ms))


def _missed(point: LoadPoint, ttft_target_ms: float, itl_target_ms: float) -> str:
    ttft_bad = point.ttft_p95_ms > ttft_target_ms
    itl_bad = point.itl_p95_ms > itl_target_ms
    return "both" if ttft_bad and itl_bad else "ttft" if ttft_bad else "itl"


class SimulatedReplica:
    """`sizing.LoadModel` by this simulation: one replica of a model on an accelerator under a
    workload and latency targets, memoised (the planner asks the same questions often).

    The traffic is the workload's without a shared cached prefix — every prompt its own
    retrieved context, as the gate's goodput search sends it — so the capacity the plan sizes
    replicas from is the one the gate can prove; a cached shared document is headroom."""

    def __init__(
        self,
        architecture: ModelArchitecture,
        accelerator: Accelerator,
        workload: Workload,
        ttft_target_ms: float,
        itl_target_ms: float,
    ) -> None:
        self.architecture = architecture
        self.accelerator = accelerator
        self.workload = replace(workload, shared_prefix_share=0.0)
        self.ttft_target_ms = ttft_target_ms
        self.itl_target_ms = itl_target_ms
        self._points: dict[tuple[ServingKnobs, int], LoadPoint] = {}
        self._capacities: dict[tuple[ServingKnobs, int], SloCapacity] = {}

    def capacity(self, knobs: ServingKnobs, ceiling: int) -> SloCapacity:
        """Capacity at the SLO of a server allowed `ceiling` sequences (or its own cap)."""
        key = (knobs, ceiling)
        if key not in self._capacities:
            self._capacities[key] = capacity_at_slo(
                self.architecture,
                self.accelerator,
                served_knobs(knobs, ceiling),
                self.workload,
                self.ttft_target_ms,
                self.itl_target_ms,
                ceiling=min(ceiling, knobs.max_num_seqs or ceiling),
            )
        return self._capacities[key]

    def slo_concurrency(self, knobs: ServingKnobs, ceiling: int) -> int:
        point = self.capacity(knobs, ceiling).point
        return point.concurrency if point else 0

    def at(self, knobs: ServingKnobs, concurrency: int) -> LoadPoint:
        """Steady state with `concurrency` clients, the server started for them."""
        concurrency = min(concurrency, MAX_CLIENTS)
        key = (knobs, concurrency)
        if key not in self._points:
            self._points[key] = simulate(
                self.architecture,
                self.accelerator,
                served_knobs(knobs, concurrency),
                self.workload,
                concurrency,
            )
        return self._points[key]


def served_knobs(knobs: ServingKnobs, max_num_seqs: int) -> ServingKnobs:
    """The knobs vLLM actually runs with: the planned sequences per step, and a step budget no
    smaller than them (vLLM rejects a budget below max-num-seqs)."""
    seqs = knobs.max_num_seqs or max_num_seqs
    return replace(
        knobs, max_num_seqs=seqs, max_num_batched_tokens=max(knobs.max_num_batched_tokens, seqs)
    )
