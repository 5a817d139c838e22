"""Streaming probes for the GPU proof, run on the device next to vLLM (Python 3.12, aiohttp).

  hol     8 chat streams decode; one long document request arrives. Worst inter-token gap of
          the chat streams while the document is prefilled (head-of-line blocking).
  shared  50 users ask about the same long document: TTFT of the first (cold) request vs
          the rest, the throughput of the rounds, then lone requests on the warm cache.

Prompts are random token ids (`/v1/completions` accepts ids), so lengths are exact.
    python3 stream_probe.py hol --url http://127.0.0.1:8000 --model-dir DIR --out hol.json
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import time
from pathlib import Path

import aiohttp


def random_ids(count: int, vocab: int, rng: random.Random) -> list[int]:
    return [rng.randrange(1000, vocab - 1000) for _ in range(count)]


def completion_body(prompt: list[int], max_tokens: int) -> bytes:
    """A streamed /v1/completions request, serialized. Built before the clock starts: making
    and encoding a 100k-id prompt takes the probe ~0.1 s, during which it reads no stream."""
    return json.dumps({"model": "m", "prompt": prompt, "max_tokens": max_tokens, "stream": True,
                       "ignore_eos": True, "temperature": 0}).encode()  # fmt: skip


async def stream(session: aiohttp.ClientSession, url: str, body: bytes) -> dict:
    """One streamed completion: send time, and the arrival time of every token chunk."""
    sent = time.perf_counter()
    arrivals: list[float] = []
    headers = {"Content-Type": "application/json"}
    async with session.post(f"{url}/v1/completions", data=body, headers=headers) as response:
        response.raise_for_status()
        async for raw in response.content:
            line = raw.decode().strip()
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            chunk = json.loads(line[5:])
            if chunk["choices"] and chunk["choices"][0].get("text") is not None:
                arrivals.append(time.perf_counter())
    return {"sent": sent, "arrivals": arrivals}


def gaps_between(arrivals: list[float], start: float, end: float) -> list[tuple[float, float]]:
    """(begin, length) of every gap between consecutive tokens that overlaps [start, end]
    (a gap that begins before `start` or ends after `end` counts: it is the stall a reader
    sees)."""
    return [(a, b - a) for a, b in itertools.pairwise(arrivals) if b >= start and a <= end]


def gaps_within(arrivals: list[float], start: float, end: float) -> list[float]:
    """Gaps that begin and end inside [start, end]."""
    return [b - a for a, b in itertools.pairwise(arrivals) if a >= start and b <= end]


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def head_of_line(args: argparse.Namespace, vocab: int) -> dict:
    rng = random.Random(args.seed)
    warm_up = completion_body(random_ids(32, vocab, rng), 8)
    chat_bodies = [
        completion_body(random_ids(args.chat_tokens, vocab, rng), args.chat_output)
        for _ in range(args.chat_streams)
    ]
    document_body = completion_body(random_ids(args.doc_tokens, vocab, rng), args.doc_output)
    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await stream(session, args.url, warm_up)
        chats = [asyncio.create_task(stream(session, args.url, body)) for body in chat_bodies]
        await asyncio.sleep(args.lead_seconds)  # the chats are decoding steadily
        document = await stream(session, args.url, document_body)
        doc_done = time.perf_counter()
        results = await asyncio.gather(*chats)
    doc_sent = document["sent"]
    window = (doc_sent, doc_done + 0.5)
    during = [gaps_between(r["arrivals"], *window) for r in results]
    worst = [max(g for _, g in gaps) if gaps else 0.0 for gaps in during]
    every = [g for gaps in during for _, g in gaps]
    worst_at = max((gap for gaps in during for gap in gaps), key=lambda x: x[1], default=(0, 0))
    steady = [
        gaps_within(r["arrivals"], doc_sent - args.lead_seconds + 1, doc_sent) for r in results
    ]
    return {
        "chat_streams": args.chat_streams,
        "document_tokens": args.doc_tokens,
        "step_tokens": args.step_tokens,
        "document_output_tokens": args.doc_output,
        "document_ttft_s": round(document["arrivals"][0] - doc_sent, 3),
        "document_done_s": round(doc_done - doc_sent, 3),
        "worst_gap_during_document_s": round(max(worst), 4),
        "worst_gap_per_stream_s": [round(g, 4) for g in worst],
        "worst_gap_began_after_sent_s": round(worst_at[0] - doc_sent, 3),
        "gap_p50_during_document_s": round(quantile(every, 0.5), 4),
        "gap_p99_during_document_s": round(quantile(every, 0.99), 4),
        "gaps_over_100ms_during_document": sum(g > 0.1 for g in every),
        "worst_gap_before_document_s": round(max(max(g, default=0.0) for g in steady), 4),
        "gap_p50_before_document_s": round(quantile([g for s in steady for g in s], 0.5), 4),
        # stream 0's gaps during the document: [seconds after the document was sent, gap]
        "timeline_stream0": [[round(a - doc_sent, 4), round(g, 4)] for a, g in during[0]],
        "tokens_per_stream": [len(r["arrivals"]) for r in results],
    }


async def shared_document(args: argparse.Namespace, vocab: int) -> dict:
    rng = random.Random(1)
    document = random_ids(args.doc_tokens, vocab, rng)

    def ask() -> bytes:  # the document and a fresh question
        prompt = document + random_ids(args.question_tokens, vocab, rng)
        return completion_body(prompt, args.output_tokens)

    warm_up = completion_body(random_ids(32, vocab, rng), 8)  # not the document
    cold_body = ask()
    rounds = [[ask() for _ in range(args.users)] for _ in range(args.rounds)]
    lone = [ask() for _ in range(3)]
    timeout = aiohttp.ClientTimeout(total=900)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await stream(session, args.url, warm_up)
        cold = await stream(session, args.url, cold_body)
        started = time.perf_counter()
        ttfts: list[float] = []
        for bodies in rounds:
            results = await asyncio.gather(*[stream(session, args.url, b) for b in bodies])
            ttfts += [r["arrivals"][0] - r["sent"] for r in results if r["arrivals"]]
        elapsed = time.perf_counter() - started
        # Lone requests after the burst: the document is cached, nothing queues ahead of them.
        warm = [await stream(session, args.url, body) for body in lone]
    requests = args.users * args.rounds
    return {
        "users": args.users,
        "rounds": args.rounds,
        "document_tokens": args.doc_tokens,
        "question_tokens": args.question_tokens,
        "output_tokens": args.output_tokens,
        "cold_ttft_s": round(cold["arrivals"][0] - cold["sent"], 4),
        "lone_warm_ttft_s": [round(w["arrivals"][0] - w["sent"], 4) for w in warm],
        "ttft_p50_s": round(quantile(ttfts, 0.5), 4),
        "ttft_p95_s": round(quantile(ttfts, 0.95), 4),
        "requests_per_s": round(requests / elapsed, 3),
        "output_tokens_per_s": round(requests * args.output_tokens / elapsed, 1),
        "elapsed_s": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("probe", choices=["hol", "shared"])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--label", default="")
    parser.add_argument("--chat-streams", type=int, default=8)
    parser.add_argument("--chat-tokens", type=int, default=64)
    parser.add_argument("--chat-output", type=int, default=1500)
    parser.add_argument("--lead-seconds", type=float, default=4.0)
    parser.add_argument("--doc-tokens", type=int, default=100_000)
    parser.add_argument("--step-tokens", type=int, help="the server's max-num-batched-tokens")
    parser.add_argument("--prompt-id-limit", type=int, help="prompt ids below this (default: "
                        "the model's vocabulary; the BPE tokenizer's tokens: 100256)")  # fmt: skip
    parser.add_argument("--doc-output", type=int, default=1, help="tokens the document asks for")
    parser.add_argument("--seed", type=int, default=0, help="prompts' random ids (a new seed: "
                        "a prompt the prefix cache has not seen)")  # fmt: skip
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--question-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=128)
    args = parser.parse_args()
    vocab = (
        args.prompt_id_limit
        or json.loads((args.model_dir / "config.json").read_text())["vocab_size"]
    )
    probe = head_of_line if args.probe == "hol" else shared_document
    result = {"probe": args.probe, "label": args.label, **asyncio.run(probe(args, vocab))}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "timeline_stream0"}))


if __name__ == "__main__":
    main()
