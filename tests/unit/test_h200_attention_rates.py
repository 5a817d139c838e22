"""attention_rates.py's arithmetic and its report (the timing itself needs the GPU)."""

from __future__ import annotations

import pytest

from benchmarks.gpu.h200 import attention_rates as ar


def test_chunks_leave_room_for_one_token_per_stream_and_cover_the_prompt() -> None:
    cut = ar.chunks(prompt=6400, budget=1792, decoding=103)
    assert [c.query for c in cut] == [1689, 1689, 1689, 1333]
    assert [c.context for c in cut] == [1689, 3378, 5067, 6400]
    with pytest.raises(ValueError, match="no room"):
        ar.chunks(budget=100, decoding=100)


def test_causal_pairs_count_each_query_rows_visible_keys() -> None:
    # A 3-token chunk after 2 cached tokens sees 3, 4 and 5 keys: 12 pairs.
    per_pair = 4 * ar.QUERY_HEADS * ar.HEAD_DIM
    assert ar.attention_flops(ar.Sequence_(3, 5)) == 12 * per_pair
    assert ar.attention_flops(ar.Sequence_(1, 6400)) == 6400 * per_pair
    # A whole 6,400-token prompt, chunk by chunk, costs what it costs at once.
    whole = ar.attention_flops(ar.Sequence_(6400, 6400))
    assert sum(ar.attention_flops(c) for c in ar.chunks()) == pytest.approx(whole)
    # ≈ 2.8 TFLOP a step over 32 layers at the trace's 1,689-token chunks (README's figure).
    assert whole * ar.LAYERS * 1689 / 6400 / 1e12 == pytest.approx(2.83, abs=0.01)


def test_streams_are_mid_output_and_their_kv_bytes_follow_the_precision() -> None:
    streams = ar.decoding_streams(count=50, prompt=100, output=10)
    assert all(s.query == 1 and 101 <= s.context <= 110 for s in streams)
    assert ar.kv_bytes(streams, 2) == 2 * ar.kv_bytes(streams, 1)
    one = [ar.Sequence_(1, 1000)]
    assert ar.kv_bytes(one, 1) == 2 * ar.KV_HEADS * ar.HEAD_DIM * 1000


def _chunk(query: int, context: int, alone_ms: float, mixed_ms: float) -> dict:
    return {"query": query, "context": context, "flops": 1e12, "prefill_alone_ms": alone_ms,
            "mixed_ms": mixed_ms}  # fmt: skip


def test_summary_rates_and_the_check_that_refuses_a_layout() -> None:
    rows = [_chunk(100, 100, 2.0, 3.0), _chunk(100, 200, 2.0, 5.0)]
    row = ar.summarize("fp8", 16, decode_ms=1.0, decode_bytes=4e9, chunk_rows=rows,
                       max_error=0.02)  # fmt: skip
    assert row["checked"] and row["decode_tb_per_s"] == pytest.approx(4.0)
    assert row["mixed_mean_ms"] == pytest.approx(4.0)
    assert row["prefill_alone_tflops"] == pytest.approx(2e12 / 4.0 / 1e9)  # 500
    assert row["prefill_beside_streams_tflops"] == pytest.approx(2e12 / 6.0 / 1e9)
    wrong = ar.summarize("bf16", 128, 1.0, 4e9, rows, max_error=1.4)
    assert not wrong["checked"]
    text = ar.markdown({
        "device": "H200", "torch": "2.11", "method": "m", "decoding_streams": 103,
        "chunks": [{"query": 100, "context": 100}], "traced_kernel_us": 744.0,
        "layouts": [row, wrong],
    })  # fmt: skip
    assert "| fp8 | 16 | 4000 | 1000 | 4.00 | 500 | 333 | yes" in text
    assert "4000 µs a launch here against 744 µs in the H200's trace (5.38×)" in text
    assert "**Not to be read**: bf16/128" in text
    assert "checked NO" in ar.row_line(wrong)


def test_flashinfer_rows_show_what_ran_and_what_was_refused() -> None:
    ran = {
        "backend": "flashinfer", "kv_dtype": "fp8", "page": 16,
        "decode": {"ms": 0.4, "first_call_s": 90.0, "tb_per_s": 3.5},
        "decode_tensor_cores": {"error": "RuntimeError: no kernel for this layout"},
        "prefill": {"tflops": 610.0, "chunks": []},
        "max_relative_error": 0.01, "checked": True,
    }  # fmt: skip
    refused = {
        "backend": "flashinfer", "kv_dtype": "bf16", "page": 16,
        "decode": {"error": "E"}, "decode_tensor_cores": {"error": "E"},
        "prefill": {"error": "E"}, "max_relative_error": None, "checked": False,
    }  # fmt: skip
    lines = ar.flashinfer_lines([ran, refused])
    assert (
        "| fp8 | 16 | 400 | 3.50 | refused: RuntimeError: no kernel for this layout | "
        "refused: RuntimeError: no kernel for this layout | 610 | yes (0.01) |"
    ) in lines
    assert lines[-1].endswith("| NO (nothing ran) |")
    text = ar.markdown({
        "device": "H200", "torch": "2.11", "method": "m", "decoding_streams": 103,
        "chunks": [], "traced_kernel_us": 744.0, "layouts": [], "flashinfer": [ran],
    })  # fmt: skip
    assert "FlashInfer on the same mix" in text


def test_flashinfer_is_a_lever_only_where_its_fp8_decode_outreads_fa3s_on_the_same_device() -> None:
    """The rule the H200 README sets before a serving run: FlashInfer's best checked FP8 decode
    against FA3's (FP8, 16-token pages) from the same run."""
    fa3 = ar.summarize("fp8", 16, decode_ms=1.0, decode_bytes=2e9, chunk_rows=[_chunk(1, 1, 1, 1)],
                       max_error=0.01)  # fmt: skip  # 2.00 TB/s

    def flashinfer(cuda_cores: float, tensor_cores: float, checked: bool = True) -> dict:
        return {
            "backend": "flashinfer", "kv_dtype": "fp8", "page": 16,
            "decode": {"ms": 1.0, "tb_per_s": cuda_cores},
            "decode_tensor_cores": {"ms": 1.0, "tb_per_s": tensor_cores},
            "prefill": {"tflops": 100.0}, "max_relative_error": 0.01, "checked": checked,
        }  # fmt: skip

    def verdict(*rows: dict) -> str | None:
        return ar.flashinfer_verdict({"layouts": [fa3], "flashinfer": list(rows)})

    slower = verdict(flashinfer(1.04, 1.76))
    assert slower is not None and "tensor cores) reads 1.76 TB/s against FA3's 2.00" in slower
    assert "(0.88×): no lever" in slower
    faster = verdict(flashinfer(2.5, 1.0))
    assert (
        faster is not None
        and "(CUDA cores) reads 2.50" in faster
        and "worth a serving run" in faster
    )
    assert verdict(flashinfer(9.0, 9.0, checked=False)) is None  # a wrong output is no rate
    assert ar.flashinfer_verdict({"layouts": [], "flashinfer": [flashinfer(3.0, 3.0)]}) is None
