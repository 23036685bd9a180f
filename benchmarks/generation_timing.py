"""What `generation.py` times: its workload (seeded chat requests) and the ways of running it
(naive `generate`, client threads at a concurrency, the interleaved single stream), and the
machine's matmul rate. Kept apart from the driver and its report so other benchmarks
(`engine_profile.py`, `quant.py`) use the same workload."""

from __future__ import annotations

import queue
import random
import threading
import time

import torch

from selflab.models.engine_threads import TORCH_DEFAULT_THREADS
from selflab.models.hf import HFModel
from selflab.models.types import GenerationRequest

TOPICS = [
    "the water cycle",
    "why the sky is blue",
    "how a bicycle stays upright",
    "the history of the printing press",
    "photosynthesis",
    "prime numbers",
    "the rules of chess",
    "how vaccines work",
    "black holes",
    "the French revolution",
    "compound interest",
    "how to make bread",
]
FORMS = [
    "Explain {t} in one paragraph.",
    "Give three facts about {t}.",
    "Write a short poem about {t}.",
    "What is the most surprising thing about {t}? Answer briefly.",
    "You are a patient teacher. A student who is twelve years old asks you about {t}. "
    "Explain it step by step, with an everyday example, and end with a question to check understanding.",
    "Summarise {t} for a busy executive in two sentences.",
]


def workload(n: int, seed: int) -> list[GenerationRequest]:
    rng = random.Random(seed)
    requests = []
    for i in range(n):
        text = rng.choice(FORMS).format(t=rng.choice(TOPICS))
        max_new = rng.randint(16, 128)
        if i % 2 == 0:
            requests.append(GenerationRequest.chat(text, max_new_tokens=max_new))
        else:
            requests.append(
                GenerationRequest.chat(
                    text, max_new_tokens=max_new, temperature=0.7, top_p=0.95, seed=rng.randrange(1 << 30)
                )
            )
    return requests


def matmul_gflops(dtype: torch.dtype = torch.float32, size: int = 2048, repeats: int = 5) -> float:
    """Best matmul throughput of this machine in `dtype` (GFLOP/s), over 1 thread and torch's default
    thread count (the best of the two makes the ceiling as demanding as possible)."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(dtype)
    b = torch.randn(size, size, generator=g).to(dtype)
    current = torch.get_num_threads()
    best = float("inf")
    for threads in sorted({1, TORCH_DEFAULT_THREADS}):
        torch.set_num_threads(threads)
        a @ b
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
    torch.set_num_threads(current)
    return 2 * size**3 / best / 1e9


def naive(lm: HFModel, requests: list[GenerationRequest]) -> tuple[int, float]:
    """transformers `generate`, one request at a time, same sampling settings."""
    tokens = 0
    start = time.perf_counter()
    for req in requests:
        ids = torch.tensor([lm.prompt_ids(req)], device=lm.device)
        s = req.sampling
        kwargs = (
            {"do_sample": False}
            if s.greedy
            else {"do_sample": True, "temperature": s.temperature, "top_p": s.top_p}
        )
        with torch.inference_mode():
            out = lm.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=s.max_new_tokens,
                pad_token_id=lm.engine.pad_id,
                **kwargs,
            )
        new = out[0, ids.shape[1] :].tolist()
        tokens += sum(1 for t in new if t not in lm.engine.eos_ids)
    return tokens, time.perf_counter() - start


def engine(lm, requests: list[GenerationRequest], concurrency: int) -> tuple[int, float, dict[int, str]]:
    """`concurrency` client threads, each sending one request at a time until the queue is empty.
    Works for any `LanguageModel` (our engine, or a server through the `openai:` backend); returns
    completion tokens, seconds and the text of every greedy request (by index) for agreement."""
    todo: queue.Queue = queue.Queue()
    for item in enumerate(requests):
        todo.put(item)
    counts = [0] * concurrency
    errors: list[str] = []
    greedy: dict[int, str] = {}

    def client(k: int) -> None:
        while True:
            try:
                i, req = todo.get_nowait()
            except queue.Empty:
                return
            got = lm.generate([req])[0]
            if got.error:
                errors.append(got.error)
            counts[k] += got.completion_tokens
            if req.sampling.greedy:
                greedy[i] = got.text

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(f"{getattr(lm, 'name', 'model')} errors: {errors[:3]}")
    return sum(counts), elapsed, greedy


def interleaved(
    models: list, requests: list[GenerationRequest]
) -> list[tuple[int, float, float, dict[int, str]]]:
    """Single stream, interleaved: every request goes to each model in turn, one call at a time, the
    order rotating from one request to the next. Why: this shared machine's speed drifts by 10-25%
    from minute to minute (once by half for a minute, docs/performance.md), and timing one side's
    requests minutes after the other's put that drift into the single-stream ratio; interleaved,
    both sides are timed in the same minutes. Returns per model: completion tokens, seconds, this
    process's CPU seconds during its calls, and the text of every greedy request (by index)."""
    tokens = [0] * len(models)
    seconds = [0.0] * len(models)
    cpu = [0.0] * len(models)
    greedy: list[dict[int, str]] = [{} for _ in models]
    for i, req in enumerate(requests):
        for k in range(len(models)):
            m = (i + k) % len(models)
            started, cpu_started = time.perf_counter(), time.process_time()
            got = models[m].generate([req])[0]
            seconds[m] += time.perf_counter() - started
            cpu[m] += time.process_time() - cpu_started
            if got.error:
                raise RuntimeError(f"{getattr(models[m], 'name', 'model')} error: {got.error}")
            tokens[m] += got.completion_tokens
            if req.sampling.greedy:
                greedy[m][i] = got.text
    return [(tokens[m], seconds[m], cpu[m], greedy[m]) for m in range(len(models))]
