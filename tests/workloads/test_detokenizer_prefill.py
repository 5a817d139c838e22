"""The detokenizer benchmark measures vLLM's whole-prompt priming against the stack's plugin
(whose streamed text is checked in test_vllm_plugin.py) for every length it is given."""

from __future__ import annotations

from benchmarks.serving.detokenizer_prefill import markdown, measure


def test_benchmark_reports_every_length_and_renders_a_table() -> None:
    result = measure([512, 2048], repeats=1)
    assert [row["prompt_tokens"] for row in result["rows"]] == [512, 2048]
    assert all(row["first_step_whole_prompt_ms"] > 0 for row in result["rows"])
    assert all(row["first_step_plugin_ms"] > 0 for row in result["rows"])
    assert result["plugin_prime_tokens"] == 32
    table = markdown([result])
    assert "| 2,048 |" in table and result["tokenizer"] in table
