"""The detokenizer benchmark measures what vLLM does: a stream primed with the whole prompt must
produce the same next-token text as one primed with the prompt's last tokens."""

from __future__ import annotations

from tokenizers import decoders

from benchmarks.serving.detokenizer_prefill import LOOKBACK, byte_level_bpe, markdown, measure


def test_priming_with_the_last_tokens_decodes_the_same_next_token() -> None:
    tokenizer = byte_level_bpe()
    ids = tokenizer.encode("Harbor valves are inspected every quarter by the field team.").ids
    prompt, following = ids[:-3], ids[-3:]
    whole = decoders.DecodeStream(ids=prompt, skip_special_tokens=True)
    tail = decoders.DecodeStream(ids=prompt[-LOOKBACK:], skip_special_tokens=True)
    texts = [(whole.step(tokenizer, t), tail.step(tokenizer, t)) for t in following]
    assert all(a == b for a, b in texts), texts
    expected = tokenizer.decode(ids)[len(tokenizer.decode(prompt)) :]
    assert "".join(a or "" for a, _ in texts) == expected


def test_benchmark_reports_every_length_and_renders_a_table() -> None:
    result = measure([512, 2048], repeats=1)
    assert [row["prompt_tokens"] for row in result["rows"]] == [512, 2048]
    assert all(row["first_step_whole_prompt_ms"] > 0 for row in result["rows"])
    table = markdown([result])
    assert "| 2,048 |" in table and result["tokenizer"] in table
