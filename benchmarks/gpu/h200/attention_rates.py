"""The serving step's attention, alone: vLLM's FlashAttention-3 kernel on the traced step's mix.

The trace of the plan's profile at prod's shape (`profiles/opt-c109`) has one FlashAttention-3
varlen kernel per layer at 744 µs: ≈ 103 decoding streams (one query token each over ≈ 6,600
cached tokens) and one ≈ 1,700-token prefill chunk, in one launch. Read from the trace, the
decoding streams' KV reads account for ≈ 10 ms a step and the chunk's attention runs at
≈ 210 TFLOP/s, a tenth of the FP8 peak. This times the same kernel on that mix, outside the
server, to say which part is slow and what changes it:
- mixed (what vLLM launches), the decoding streams alone, the prefill chunk alone — so the
  chunk's cost beside the streams (mixed − decode) reads against its cost alone;
- KV pages of 16 tokens (vLLM's default), 64, 128 and 256, FP8 and 16-bit KV: FA3 loads
  paged K/V with TMA only when a page holds whole key tiles (128 keys for 16-bit causal
  attention at head size 128; 224 for FP8, which no vLLM page size is), else per thread.

Before any timing is believed, each layout's output is checked against a plain PyTorch
attention over the same pages (one decoding stream and the chunk's last rows), and the mixed
launch's rows against the separate launches': a wrong page table or a mis-set causal offset
would time the wrong attention. The page-16 FP8 mixed time is set beside the trace's 744 µs.

On the GPU machine (vLLM carried, `export PYTHONPATH=/tmp/site`):

    python3 -m benchmarks.gpu.h200.attention_rates --out $OUT/attention_rates.json

and here, the table: `.venv/bin/python -m benchmarks.gpu.h200.attention_rates --markdown
benchmarks/results/gpu_h200_attention_rates.json > benchmarks/results/gpu_h200_attention_rates.md`.

Each timing is the median of 20 CUDA-event-timed launches after 5 warm-ups, on random data,
one layer (Llama-3.1-8B: 32 query heads, 8 KV heads, head size 128), scheduler metadata
computed ahead as vLLM's FA3 path does.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.gpu.h200.gemm_rates import median_ms, rendered

QUERY_HEADS, KV_HEADS, HEAD_DIM, LAYERS = 32, 8, 128, 32
PROMPT, OUTPUT, STEP_BUDGET, DECODING = 6400, 384, 1792, 103
PAGE_SIZES = (16, 64, 128, 256)
KV_DTYPES = ("fp8", "bf16")
TRACED_KERNEL_US = 744.0  # profiles/opt-c109/kernels.md: the FA3 kernel's mean launch


@dataclass(frozen=True)
class Sequence_:
    """One request in the launch: its new query tokens and the keys it attends to (its
    context after this step, the new tokens included; causal, bottom-right aligned)."""

    query: int
    context: int


def chunks(
    prompt: int = PROMPT, budget: int = STEP_BUDGET, decoding: int = DECODING
) -> list[Sequence_]:
    """The prompt's prefill chunks as the scheduler cuts them beside `decoding` streams: the
    step budget less one token per stream, the last chunk what is left."""
    size = budget - decoding
    if size <= 0:
        raise ValueError(f"a step of {budget} tokens leaves no room beside {decoding} streams")
    cut, done = [], 0
    while done < prompt:
        query = min(size, prompt - done)
        done += query
        cut.append(Sequence_(query, done))
    return cut


def decoding_streams(
    count: int = DECODING, prompt: int = PROMPT, output: int = OUTPUT, seed: int = 0
) -> list[Sequence_]:
    """`count` streams part-way through their output: one query token over the prompt plus
    what they generated so far (uniform over the output length)."""
    rng = random.Random(seed)
    return [Sequence_(1, prompt + rng.randint(1, output)) for _ in range(count)]


def attention_flops(seq: Sequence_, heads: int = QUERY_HEADS, head_dim: int = HEAD_DIM) -> float:
    """Causal attention's matmul FLOPs for one layer: QKᵀ and PV, 2 × 2 × head_dim per
    (query, key) pair; query row i (0-based) of the chunk sees context − query + i + 1 keys."""
    pairs = seq.query * (seq.context - seq.query) + seq.query * (seq.query + 1) / 2
    return 4.0 * heads * head_dim * pairs


def kv_bytes(seqs: Sequence[Sequence_], dtype_bytes: int) -> float:
    """K and V bytes the launch must read for one layer: every key of every sequence, once."""
    return sum(2.0 * KV_HEADS * HEAD_DIM * dtype_bytes * s.context for s in seqs)


def _pool(streams: list[Sequence_], page: int, dtype: Any) -> tuple[Any, list[Any], Any]:
    """One KV pool holding every stream's pages and a whole prompt's, shuffled as a serving
    pool's are: (cache [2, pages, page, KV heads, head size], the streams' page tables, the
    prompt's). Keys and queries at σ ≈ 2.2 give scores of σ ≈ 5: each query attends to a few
    keys, so a wrong page or causal offset changes the output wholesale (at small σ every
    output is the mean of random values, ≈ 0, whichever keys were read)."""
    import torch

    pages_of = [math.ceil(s.context / page) for s in [*streams, Sequence_(PROMPT, PROMPT)]]
    pool = sum(pages_of) + 8
    cache = torch.randn(2, pool, page, KV_HEADS, HEAD_DIM, device="cuda")
    cache[0] *= SHARP
    cache = cache.to(dtype)
    order = torch.randperm(pool, device="cuda", dtype=torch.int32)
    tables, start = [], 0
    for n in pages_of:
        tables.append(order[start : start + n])
        start += n
    return cache, tables[:-1], tables[-1]


def _reference(cache: Any, q_rows: Any, seq: Sequence_, table: Any) -> Any:
    """Plain attention (fp32) for `q_rows`, the last rows of `seq`, over its pages."""
    import torch

    flat = cache[:, table.long()].float().reshape(2, -1, KV_HEADS, HEAD_DIM)
    k, v = flat[0, : seq.context], flat[1, : seq.context]
    k = k.repeat_interleave(QUERY_HEADS // KV_HEADS, dim=1)
    v = v.repeat_interleave(QUERY_HEADS // KV_HEADS, dim=1)
    rows = q_rows.float()
    n = rows.shape[0]
    scores = torch.einsum("qhd,khd->hqk", rows, k) * HEAD_DIM**-0.5
    positions = torch.arange(seq.context - n, seq.context, device="cuda")
    mask = torch.arange(seq.context, device="cuda")[None, :] > positions[:, None]
    scores = scores.masked_fill(mask[None], float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


def measure(
    page_sizes: Sequence[int] = PAGE_SIZES, kv_dtypes: Sequence[str] = KV_DTYPES
) -> dict[str, Any]:
    import torch
    from vllm.vllm_flash_attn import flash_attn_varlen_func, get_scheduler_metadata

    torch.manual_seed(0)
    streams = decoding_streams()
    cut = chunks()
    rows = []
    for kv_dtype in kv_dtypes:
        dtype = torch.float8_e4m3fn if kv_dtype == "fp8" else torch.bfloat16
        for page in page_sizes:
            cache, stream_tables, prompt_table = _pool(streams, page, dtype)

            def launch(
                seqs: list[Sequence_],
                seq_tables: list[Any],
                dtype: Any = dtype,
                page: int = page,
                cache: Any = cache,
            ) -> tuple[Callable[[], Any], Any, Any]:
                width = max(t.numel() for t in seq_tables)
                table = torch.zeros(len(seqs), width, dtype=torch.int32, device="cuda")
                for i, t in enumerate(seq_tables):
                    table[i, : t.numel()] = t
                lens_q = [s.query for s in seqs]
                cu_q = torch.tensor([0, *torch.tensor(lens_q).cumsum(0).tolist()],
                                    dtype=torch.int32, device="cuda")  # fmt: skip
                used_k = torch.tensor([s.context for s in seqs], dtype=torch.int32,
                                      device="cuda")  # fmt: skip
                q = torch.randn(sum(lens_q), QUERY_HEADS, HEAD_DIM, device="cuda") * SHARP
                q = q.to(dtype)
                out = torch.empty(sum(lens_q), QUERY_HEADS, HEAD_DIM, device="cuda",
                                  dtype=torch.bfloat16)  # fmt: skip
                scale = torch.ones(len(seqs), KV_HEADS, device="cuda", dtype=torch.float32)
                fp8 = dtype == torch.float8_e4m3fn
                try:
                    metadata = get_scheduler_metadata(
                        batch_size=len(seqs), max_seqlen_q=max(lens_q),
                        max_seqlen_k=max(s.context for s in seqs), num_heads_q=QUERY_HEADS,
                        num_heads_kv=KV_HEADS, headdim=HEAD_DIM, cache_seqlens=used_k,
                        qkv_dtype=dtype, page_size=page, cu_seqlens_q=cu_q, causal=True,
                    )  # fmt: skip
                except (TypeError, RuntimeError) as error:  # another FA3 build's signature
                    print(f"no scheduler metadata ({error}); the kernel plans its own")
                    metadata = None

                def run() -> Any:
                    return flash_attn_varlen_func(
                        q, cache[0], cache[1], max(lens_q), cu_q,
                        max(s.context for s in seqs), seqused_k=used_k, causal=True,
                        softmax_scale=HEAD_DIM**-0.5, block_table=table, out=out,
                        scheduler_metadata=metadata, fa_version=3,
                        q_descale=scale if fp8 else None, k_descale=scale if fp8 else None,
                        v_descale=scale if fp8 else None,
                    )  # fmt: skip

                return run, q, out

            decode_run, decode_q, decode_out = launch(streams, stream_tables)
            decode_ms = median_ms(decode_run)
            decode_run()
            expect = _reference(cache, decode_q[-1:], streams[-1], stream_tables[-1])
            errors = [relative_error(decode_out[-1:], expect)]
            chunk_rows = []
            for c in cut:
                pre_run, pre_q, pre_out = launch([c], [prompt_table])
                mix_run, mix_q, mix_out = launch([*streams, c], [*stream_tables, prompt_table])
                pre_ms, mix_ms = median_ms(pre_run), median_ms(mix_run)
                pre_run()
                tail = min(c.query, 16)
                expect = _reference(cache, pre_q[-tail:], c, prompt_table)
                errors.append(relative_error(pre_out[-tail:], expect))
                # The mixed launch, with the chunk's and a stream's queries as the lone ones:
                mix_q[-c.query :] = pre_q
                mix_q[: len(streams)] = decode_q
                mix_run()
                errors.append(relative_error(mix_out[-c.query :], pre_out))
                errors.append(relative_error(mix_out[: len(streams)], decode_out))
                flops = attention_flops(c)
                chunk_rows.append({
                    "query": c.query, "context": c.context, "flops": flops,
                    "prefill_alone_ms": pre_ms, "mixed_ms": mix_ms,
                    "prefill_alone_tflops": flops / pre_ms / 1e9,
                    "prefill_in_mix_tflops": flops / max(mix_ms - decode_ms, 1e-6) / 1e9,
                })  # fmt: skip
            dtype_bytes = 1 if kv_dtype == "fp8" else 2
            rows.append(summarize(kv_dtype, page, decode_ms, kv_bytes(streams, dtype_bytes),
                                  chunk_rows, max(errors)))  # fmt: skip
            print(row_line(rows[-1]), flush=True)
            del cache
            torch.cuda.empty_cache()
    return {
        "device": torch.cuda.get_device_name(0),
        "torch": torch.__version__,
        "method": __doc__.split("\n\n")[-1].strip(),
        "decoding_streams": len(streams),
        "chunks": [{"query": c.query, "context": c.context} for c in cut],
        "traced_kernel_us": TRACED_KERNEL_US,
        "layouts": rows,
    }


def measure_flashinfer(
    kv_dtypes: Sequence[str] = KV_DTYPES, page: int = 16
) -> list[dict[str, Any]]:
    """FlashInfer's kernels on the same mix, as vLLM's FLASHINFER backend runs a step: the
    decoding streams through its decode wrapper (CUDA cores, and tensor cores), the prefill
    chunk through its prefill wrapper — two launches, 16-bit queries over the KV cache's
    precision. On Hopper its kernels are compiled at first use (nvcc): `first_call_s` says
    how long that took. A part FlashInfer refuses is recorded with its error, not timed."""
    import time

    import flashinfer
    import torch

    torch.manual_seed(0)
    streams, cut = decoding_streams(), chunks()
    workspace = torch.empty(512 * 1024 * 1024, dtype=torch.uint8, device="cuda")
    rows = []
    for kv_dtype in kv_dtypes:
        dtype = torch.float8_e4m3fn if kv_dtype == "fp8" else torch.bfloat16
        cache, stream_tables, prompt_table = _pool(streams, page, dtype)
        kv = (cache[0], cache[1])
        row: dict[str, Any] = {"backend": "flashinfer", "kv_dtype": kv_dtype, "page": page}
        errors: list[float] = []

        def paged(seqs: list[Sequence_], tables: list[Any]) -> tuple[Any, Any, Any]:
            used = [t[: math.ceil(s.context / page)] for s, t in zip(seqs, tables, strict=True)]
            indptr = torch.tensor([0, *torch.tensor([t.numel() for t in used]).cumsum(0).tolist()],
                                  dtype=torch.int32, device="cuda")  # fmt: skip
            last_len = [s.context - (t.numel() - 1) * page
                        for s, t in zip(seqs, used, strict=True)]  # fmt: skip
            last = torch.tensor(last_len, dtype=torch.int32, device="cuda")
            return indptr, torch.cat(used), last

        def timed(run: Callable[[], Any]) -> tuple[float, float, Any]:
            t0 = time.monotonic()
            out = run()
            torch.cuda.synchronize()
            return time.monotonic() - t0, median_ms(run), out

        q = (torch.randn(len(streams), QUERY_HEADS, HEAD_DIM, device="cuda") * SHARP).to(
            torch.bfloat16
        )
        expect = _reference(cache, q[-1:], streams[-1], stream_tables[-1])
        for cores in (False, True):
            key = "decode_tensor_cores" if cores else "decode"
            try:
                wrapper = flashinfer.BatchDecodeWithPagedKVCacheWrapper(
                    workspace, "NHD", use_tensor_cores=cores
                )
                wrapper.plan(*paged(streams, stream_tables), QUERY_HEADS, KV_HEADS, HEAD_DIM,
                             page, q_data_type=torch.bfloat16, kv_data_type=dtype,
                             sm_scale=HEAD_DIM**-0.5)  # fmt: skip
                first, ms, out = timed(lambda w=wrapper, q=q, kv=kv: w.run(q, kv))
                errors.append(relative_error(out[-1:], expect))
                row[key] = {"ms": ms, "first_call_s": first,
                            "tb_per_s": kv_bytes(streams, 1 if kv_dtype == "fp8" else 2)
                            / ms / 1e9}  # fmt: skip
            except Exception as error:  # recorded: what FlashInfer refused, not timed
                row[key] = {"error": f"{type(error).__name__}: {error}"[:400]}
            print(f"flashinfer {kv_dtype} {key}: {row[key]}", flush=True)
        chunk_rows = []
        try:
            for c in cut:
                wrapper = flashinfer.BatchPrefillWithPagedKVCacheWrapper(workspace, "NHD")
                qo = torch.tensor([0, c.query], dtype=torch.int32, device="cuda")
                wrapper.plan(qo, *paged([c], [prompt_table]), QUERY_HEADS, KV_HEADS, HEAD_DIM,
                             page, causal=True, q_data_type=torch.bfloat16, kv_data_type=dtype,
                             sm_scale=HEAD_DIM**-0.5)  # fmt: skip
                qc = (torch.randn(c.query, QUERY_HEADS, HEAD_DIM, device="cuda") * SHARP).to(
                    torch.bfloat16
                )
                first, ms, out = timed(lambda w=wrapper, qc=qc, kv=kv: w.run(qc, kv))
                tail = min(c.query, 16)
                errors.append(relative_error(out[-tail:], _reference(cache, qc[-tail:], c,
                                                                     prompt_table)))  # fmt: skip
                chunk_rows.append({"query": c.query, "context": c.context,
                                   "flops": attention_flops(c), "ms": ms,
                                   "first_call_s": first})  # fmt: skip
            flops = sum(r["flops"] for r in chunk_rows)
            row["prefill"] = {"chunks": chunk_rows,
                              "tflops": flops / sum(r["ms"] for r in chunk_rows) / 1e9}  # fmt: skip
        except Exception as error:  # recorded: what FlashInfer refused, not timed
            row["prefill"] = {"error": f"{type(error).__name__}: {error}"[:400]}
        print(f"flashinfer {kv_dtype} prefill: {row['prefill'].get('tflops', row['prefill'])}",
              flush=True)  # fmt: skip
        row["max_relative_error"] = max(errors) if errors else None
        row["checked"] = bool(errors) and max(errors) <= MAX_RELATIVE_ERROR
        rows.append(row)
        cache = kv = None
        torch.cuda.empty_cache()
    return rows


# ‖kernel − reference‖ / ‖reference‖ over the checked rows. The reference reads the same FP8
# (or bf16) values; what is left is the kernel's own rounding (FA3's FP8 path rounds the
# softmax weights to FP8 too: a few %). A wrong page or causal offset gives ≈ 1.4 (two
# unrelated outputs of the same size).
MAX_RELATIVE_ERROR = 0.1
SHARP = 2.2


def relative_error(got: Any, want: Any) -> float:
    got, want = got.float(), want.float()
    return float((got - want).norm() / want.norm().clamp_min(1e-12))


def summarize(
    kv_dtype: str,
    page: int,
    decode_ms: float,
    decode_bytes: float,
    chunk_rows: list[dict[str, Any]],
    max_error: float,
) -> dict[str, Any]:
    """One layout's figures, over the prompt's chunks (each chunk once, as a request's
    prefill passes through them): the mean mixed launch, and the chunks' attention alone and
    beside the streams as FLOP-weighted rates."""
    flops = sum(r["flops"] for r in chunk_rows)
    alone = sum(r["prefill_alone_ms"] for r in chunk_rows)
    mixed = sum(r["mixed_ms"] for r in chunk_rows)
    beside = mixed - len(chunk_rows) * decode_ms
    return {
        "kv_dtype": kv_dtype,
        "page": page,
        "checked": max_error <= MAX_RELATIVE_ERROR,
        "max_relative_error": max_error,
        "decode_ms": decode_ms,
        "decode_tb_per_s": decode_bytes / decode_ms / 1e9,
        "mixed_mean_ms": mixed / len(chunk_rows),
        "prefill_alone_tflops": flops / alone / 1e9,
        "prefill_beside_streams_tflops": flops / beside / 1e9 if beside > 0 else None,
        "chunks": chunk_rows,
    }


def row_line(row: dict[str, Any]) -> str:
    beside = row["prefill_beside_streams_tflops"]
    return (
        f"{row['kv_dtype']} KV, page {row['page']}: mixed {row['mixed_mean_ms'] * 1e3:.0f} µs, "
        f"decode alone {row['decode_ms'] * 1e3:.0f} µs ({row['decode_tb_per_s']:.2f} TB/s), "
        f"chunk alone {row['prefill_alone_tflops']:.0f} TFLOP/s, beside the streams "
        + (f"{beside:.0f}" if beside is not None else "n/a")
        + f" TFLOP/s; checked {'yes' if row['checked'] else 'NO'} "
        f"(relative error ≤ {row['max_relative_error']:.3g})"
    )


def markdown(result: dict[str, Any]) -> str:
    unchecked = [r for r in result["layouts"] if not r["checked"]]
    contexts = [stream.context for stream in decoding_streams(result["decoding_streams"])]
    low, high = min(contexts), max(contexts)
    chunks_text = ", ".join(f"{c['query']:,} → {c['context']:,}" for c in result["chunks"])
    lines = [
        "# The serving step's attention alone: FlashAttention-3 on the traced mix",
        "",
        f"Measured on {result['device']} (torch {result['torch']}, vLLM 0.25.1's FA3), by "
        "`benchmarks/gpu/h200/attention_rates.py`. " + result["method"],
        "",
        f"{result['decoding_streams']} decoding streams (one query token over {low:,}-{high:,} "
        f"cached tokens, drawn) beside each prefill chunk of a 6,400-token prompt (query tokens → "
        f"context: {chunks_text}); one layer; per-layer times.",
        "",
        "| KV | page | mixed launch, mean µs | streams alone µs | streams' KV read TB/s "
        "| chunk alone TFLOP/s | chunk beside the streams TFLOP/s | output checked |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in result["layouts"]:
        beside = r["prefill_beside_streams_tflops"]
        lines.append(
            f"| {r['kv_dtype']} | {r['page']} | {r['mixed_mean_ms'] * 1e3:.0f} | "
            f"{r['decode_ms'] * 1e3:.0f} | {r['decode_tb_per_s']:.2f} | "
            f"{r['prefill_alone_tflops']:.0f} | "
            + (f"{beside:.0f}" if beside is not None else "n/a")
            + f" | {'yes' if r['checked'] else 'NO'} ({r['max_relative_error']:.2g}) |"
        )
    if result.get("flashinfer"):
        lines += flashinfer_lines(result["flashinfer"])
        if verdict := flashinfer_verdict(result):
            lines += ["", verdict]
    served = next(
        (r for r in result["layouts"] if r["kv_dtype"] == "fp8" and r["page"] == 16), None
    )
    lines.append("")
    if served is not None:
        ratio = served["mixed_mean_ms"] * 1e3 / result["traced_kernel_us"]
        lines.append(
            f"The served layout (FP8 KV, 16-token pages): {served['mixed_mean_ms'] * 1e3:.0f} µs "
            f"a launch here against {result['traced_kernel_us']:.0f} µs in the H200's trace "
            f"({ratio:.2f}×)."
        )
    if unchecked:
        lines.append(
            "**Not to be read**: "
            + ", ".join(f"{r['kv_dtype']}/{r['page']}" for r in unchecked)
            + f" differ from the reference by more than {MAX_RELATIVE_ERROR:.0%}:"
            " a layout error, not a rate."
        )
    lines.append("")
    return "\n".join(lines)


def flashinfer_lines(rows: list[dict[str, Any]]) -> list[str]:
    """FlashInfer's two launches a step (decode wrapper, prefill wrapper) beside FA3's one."""

    def cell(part: dict[str, Any], key: str, digits: int, scale: float = 1.0) -> str:
        if "error" in part:
            return f"refused: {part['error'][:80]}"
        return f"{part[key] * scale:.{digits}f}"

    lines = [
        "",
        "FlashInfer on the same mix (vLLM's FLASHINFER backend: the streams through its decode "
        "wrapper, the chunk through its prefill wrapper; 16-bit queries):",
        "",
        "| KV | page | decode µs (CUDA cores) | TB/s | decode µs (tensor cores) | TB/s "
        "| chunk TFLOP/s | output checked |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        decode, cores, pre = r["decode"], r["decode_tensor_cores"], r["prefill"]
        error = r["max_relative_error"]
        lines.append(
            f"| {r['kv_dtype']} | {r['page']} | {cell(decode, 'ms', 0, 1e3)} | "
            f"{cell(decode, 'tb_per_s', 2)} | {cell(cores, 'ms', 0, 1e3)} | "
            f"{cell(cores, 'tb_per_s', 2)} | {cell(pre, 'tflops', 0)} | "
            + ("yes" if r["checked"] else "NO")
            + (f" ({error:.2g})" if error is not None else " (nothing ran)")
            + " |"
        )
    return lines


def flashinfer_verdict(result: dict[str, Any]) -> str | None:
    """Whether FlashInfer's lever is worth a serving run: only where its FP8 decode — the
    plan's KV reads, two thirds of its attention — reads faster than FA3's on the same device
    (both timed in one run), its output checked. None where either side has no such row."""
    fa3 = next((r for r in result["layouts"]
                if r["kv_dtype"] == "fp8" and r["page"] == 16 and r["checked"]), None)  # fmt: skip
    rates = [
        (part["tb_per_s"], name)
        for r in result["flashinfer"]
        if r["kv_dtype"] == "fp8" and r["checked"]
        for name, part in (("CUDA cores", r["decode"]), ("tensor cores", r["decode_tensor_cores"]))
        if "error" not in part
    ]
    if fa3 is None or not rates:
        return None
    rate, path = max(rates)
    faster = rate > fa3["decode_tb_per_s"]
    return (
        f"FlashInfer's fastest FP8 decode ({path}) reads {rate:.2f} TB/s against FA3's "
        f"{fa3['decode_tb_per_s']:.2f} on this device ({rate / fa3['decode_tb_per_s']:.2f}×): "
        + ("worth a serving run at the plan's capacity (queue.txt's FlashInfer line)."
           if faster else "no lever — the plan keeps FA3, and the serving run is not made.")
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--markdown", type=Path, help="print a measured JSON as a table")
    parser.add_argument("--pages", type=int, nargs="+", default=list(PAGE_SIZES))
    parser.add_argument(
        "--flashinfer",
        type=Path,
        metavar="FA3_JSON",
        help="time FlashInfer on the same mix and add it to FA3_JSON (an earlier --out) as --out",
    )
    args = parser.parse_args()
    if rendered(args, parser, markdown):
        return
    if args.flashinfer:
        result = json.loads(args.flashinfer.read_text())
        result["flashinfer"] = measure_flashinfer()
    else:
        result = measure(args.pages)
    args.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
