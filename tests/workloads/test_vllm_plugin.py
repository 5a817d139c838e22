"""The vLLM plugin primes the detokenizer with the prompt's tail and streams the same text.

Checked on real `tokenizers` with three decoder families (byte-level BPE like Llama 3,
Metaspace + byte fallback like Llama 2 / Mistral, WordPiece like BERT) and, in the vLLM CPU
environment, on vLLM's own detokenizer class with the plugin loaded through its entry point
from the folder the stack ships.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from benchmarks.serving.detokenizer_prefill import byte_level_bpe, corpus_texts
from workloads.vllm_plugin import ENTRY_POINT, ENTRY_POINT_GROUP, plugin_files, write_plugin_folder
from workloads.vllm_plugin import leanrag_vllm_plugin as plugin

SPECIALS = ["<s>", "</s>", "<|eot_id|>"]
# Characters of 2, 3 and 4 UTF-8 bytes: none is in the trained vocabularies, so byte-level and
# byte-fallback tokenizers split them into one token per byte.
MULTIBYTE = ["é", "ß", "—", "€", "漢字", "データ", "🙂", "🚀", "👩‍💻"]
VLLM_PYTHON = os.environ.get("LEANRAG_VLLM_PYTHON", "")


def _byte_level() -> Tokenizer:
    return byte_level_bpe(vocab_size=2000, special_tokens=SPECIALS)


def _metaspace_byte_fallback() -> Tokenizer:
    """Llama 2's layout: ▁ for spaces, <0xNN> tokens for bytes the vocabulary lacks."""
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    trainer = trainers.BpeTrainer(
        vocab_size=2000, special_tokens=["<unk>", *SPECIALS], limit_alphabet=100
    )
    tokenizer.train_from_iterator(
        [t.encode("ascii", "ignore").decode() for t in corpus_texts()], trainer
    )
    spec = json.loads(tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    for byte in range(256):
        vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
    spec["model"]["byte_fallback"] = True
    spec["decoder"] = {
        "type": "Sequence",
        "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ],
    }
    return Tokenizer.from_str(json.dumps(spec))


def _wordpiece() -> Tokenizer:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=2000, special_tokens=["[UNK]", *SPECIALS])
    tokenizer.train_from_iterator(corpus_texts(), trainer=trainer)
    return tokenizer


TOKENIZERS = {"byte-level": _byte_level, "metaspace-byte-fallback": _metaspace_byte_fallback,
              "wordpiece": _wordpiece}  # fmt: skip


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def tokenizer(request: pytest.FixtureRequest) -> Tokenizer:
    return TOKENIZERS[request.param]()


def _stream(tokenizer: Tokenizer, primed: list[int], tokens: list[int], skip: bool) -> list[str]:
    """What vLLM's detokenizer emits per token: the text, nothing yet, or its reset error."""
    stream = decoders.DecodeStream(ids=primed, skip_special_tokens=skip)
    out = []
    for token in tokens:
        try:
            out.append(stream.step(tokenizer, token) or "")
        except Exception as error:  # vLLM resets the stream on "Invalid prefix": same outcome
            out.append(f"<error {str(error)[:40]}>")
            stream = decoders.DecodeStream(skip_special_tokens=skip)
    return out


def _sample(rng: random.Random, text: str, words: int) -> str:
    parts = text.split()
    start = rng.randrange(0, max(1, len(parts) - words))
    picked = parts[start : start + words]
    for _ in range(words // 6):  # sprinkle multi-byte characters, glued or free-standing
        picked.insert(rng.randrange(len(picked) + 1), rng.choice(MULTIBYTE) * rng.randint(1, 3))
    return " ".join(picked)


def _cases(tokenizer: Tokenizer) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(7)
    text = " ".join(corpus_texts())
    specials = [tokenizer.token_to_id(s) for s in SPECIALS]
    cases = []
    for i in range(40):
        prompt = tokenizer.encode(_sample(rng, text, rng.randint(60, 400))).ids
        if i % 4 == 1:  # a chat template's tail: special tokens after the document
            prompt += [rng.choice(specials) for _ in range(rng.randint(1, 3))]
        if i % 4 == 2:  # more special tokens than the window: it must widen past them
            prompt += [rng.choice(specials) for _ in range(50)]
        if i % 4 == 3:  # the prompt ends in a run of multi-byte characters
            prompt += tokenizer.encode("".join(rng.choices(MULTIBYTE, k=30))).ids
        answer = tokenizer.encode(_sample(rng, text, 40), add_special_tokens=False).ids
        if i % 5 == 0:  # a model can emit any id: lone bytes, specials
            answer += [rng.randrange(tokenizer.get_vocab_size()) for _ in range(20)]
        cases.append((prompt, answer))
    return cases


@pytest.mark.parametrize("skip", [True, False], ids=["skip-special", "keep-special"])
def test_tail_primed_stream_streams_the_same_text(tokenizer: Tokenizer, skip: bool) -> None:
    widened = 0
    for prompt, answer in _cases(tokenizer):
        window = plugin.prime_window(tokenizer, prompt, skip, plugin.DEFAULT_PRIME_TOKENS)
        assert window == prompt[-len(window) :]
        assert len(window) >= min(len(prompt), plugin.DEFAULT_PRIME_TOKENS)
        widened += len(window) > plugin.DEFAULT_PRIME_TOKENS
        assert _stream(tokenizer, window, answer, skip) == _stream(tokenizer, prompt, answer, skip)
    if skip:  # the runs of 50 special tokens decode to nothing: the window widened past them
        assert widened >= 10


def test_window_widens_past_a_cut_character() -> None:
    tokenizer = _byte_level()
    emoji = tokenizer.encode("🙂").ids
    assert len(emoji) == 4  # one token per byte: the window can start mid-character
    prompt = tokenizer.encode("Hello there").ids + emoji * 8 + tokenizer.encode("é").ids
    assert tokenizer.decode(prompt[-32:]).startswith(plugin.REPLACEMENT_CHARACTER)
    window = plugin.prime_window(tokenizer, prompt, True, 32)
    assert len(window) == len(prompt)  # 64 > len(prompt): the whole prompt
    longer = tokenizer.encode("word " * 80).ids + emoji * 8 + tokenizer.encode("é").ids
    window = plugin.prime_window(tokenizer, longer, True, 32)
    assert len(window) == 64 and not tokenizer.decode(window).startswith("\ufffd")


def test_prime_tokens_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(plugin.ENV_PRIME_TOKENS, raising=False)
    assert plugin.prime_tokens() == plugin.DEFAULT_PRIME_TOKENS
    monkeypatch.setenv(plugin.ENV_PRIME_TOKENS, "0")
    assert plugin.prime_tokens() == 0
    for bad in ("-1", "many"):
        monkeypatch.setenv(plugin.ENV_PRIME_TOKENS, bad)
        with pytest.raises(ValueError, match=f"{plugin.ENV_PRIME_TOKENS}=.*whole number"):
            plugin.prime_tokens()


def test_plugin_files_declare_the_entry_point() -> None:
    files = plugin_files()
    assert files["leanrag_vllm_plugin.py"] == Path(plugin.__file__).read_text()
    entry_points = next(v for k, v in files.items() if k.endswith("/entry_points.txt"))
    assert f"[{ENTRY_POINT_GROUP}]" in entry_points
    assert f"{ENTRY_POINT} = leanrag_vllm_plugin:register" in entry_points


VLLM_CHECK = r"""
import json, sys
import tokenizers
from transformers import PreTrainedTokenizerFast
from vllm.plugins import load_general_plugins
from vllm.sampling_params import SamplingParams
from vllm.v1.engine import EngineCoreRequest
from vllm.v1.engine.detokenizer import FastIncrementalDetokenizer, IncrementalDetokenizer

tokenizer_file, prompt, answer = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
tokenizer = PreTrainedTokenizerFast(tokenizer_file=tokenizer_file)
load_general_plugins()

def run(reference):
    request = EngineCoreRequest(
        request_id="r", prompt_token_ids=prompt, mm_features=None,
        sampling_params=SamplingParams(max_tokens=len(answer)), pooling_params=None,
        arrival_time=0.0, lora_request=None, cache_salt=None, data_parallel_rank=None)
    detok = IncrementalDetokenizer.from_new_request(tokenizer, request)
    assert isinstance(detok, FastIncrementalDetokenizer), type(detok)
    primed = getattr(detok, "primed_prompt_tokens", None)
    if reference:  # what vLLM does without the plugin
        detok.stream = tokenizers.decoders.DecodeStream(ids=prompt, skip_special_tokens=True)
    deltas = []
    for token in answer:
        detok.update([token], False)
        deltas.append(detok.get_next_output_text(False, True))
    return primed, deltas

primed, deltas = run(False)
_, reference = run(True)
print(json.dumps({"patched": getattr(FastIncrementalDetokenizer.__init__,
                  "leanrag_prime_tokens", None), "primed": primed,
                  "deltas": deltas, "reference": reference}))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    not VLLM_PYTHON,
    reason="set LEANRAG_VLLM_PYTHON to the vLLM CPU environment's python (make test does)",
)
def test_vllm_loads_the_plugin_from_the_shipped_folder(tmp_path: Path) -> None:
    tokenizer = _byte_level()
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    rng = random.Random(3)
    text = " ".join(corpus_texts())
    prompt = tokenizer.encode(_sample(rng, text, 3000)).ids
    answer = tokenizer.encode(_sample(rng, text, 60)).ids
    folder = write_plugin_folder(tmp_path / "plugins")
    env = {k: v for k, v in os.environ.items() if k != "VLLM_PLUGINS"}
    env["PYTHONPATH"] = str(folder)
    done = subprocess.run(
        [VLLM_PYTHON, "-c", VLLM_CHECK, str(tmp_path / "tokenizer.json"),
         json.dumps(prompt), json.dumps(answer)],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["patched"] == plugin.DEFAULT_PRIME_TOKENS
    assert len(prompt) > 1000
    assert plugin.DEFAULT_PRIME_TOKENS <= result["primed"] < 2 * plugin.DEFAULT_PRIME_TOKENS + 1
    assert "".join(result["deltas"]) == "".join(result["reference"])
    assert result["deltas"] == result["reference"]
    assert "".join(result["deltas"]).strip()
