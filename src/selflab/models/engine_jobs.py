"""The batching engine's requests in flight: one `Job` per request, how a new token is recorded
(EOS, constraints, stop strings, length), and the `Completion` a finished job resolves to."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from selflab.models.constraints import RowMatcher
from selflab.models.engine_prefix import PrefixHit
from selflab.models.types import Completion, SamplingParams

ABANDONED = "abandoned by the caller before it finished"


class JobFuture(Future):
    """A request's future that its caller can give up on while the row is decoding: a plain
    `Future.cancel()` only works before the engine admits the request, and a streaming client
    that disconnects would otherwise keep its row generating, for nobody, up to max_new_tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.abandoned = False

    def abandon(self) -> None:
        """Cancel if not yet admitted, else finish the row at its next token (as an error
        completion, `ABANDONED`); nothing when it is already done."""
        if not self.cancel() and not self.done():
            self.abandoned = True


@dataclass
class Job:
    """One request in flight."""

    prompt_ids: list[int]
    sampling: SamplingParams
    future: Future
    generator: torch.Generator | None = None
    out_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    scanned_chars: int = 0
    stop_at: int | None = None
    finish: str | None = None
    hit: PrefixHit | None = None  # leading prompt tokens served from the prefix cache
    cached_as: int | None = None  # the prefix-cache entry holding this job's prompt (or its start)
    kv_room: torch.Tensor | None = None  # that entry's tensor, with room for the reply (`engine_shared`)
    matcher: RowMatcher | None = None  # grammar state when the request has a constraint
    error: str | None = None  # why a constrained row had to stop (no allowed token)
    on_tokens: Callable[[list[int]], None] | None = None  # streaming: told each new token list

    @property
    def new_tokens(self) -> int:
        """Prompt tokens a prefill must still compute."""
        return len(self.prompt_ids) - (self.hit.length if self.hit is not None else 0)


@dataclass
class EngineStats:
    """Counters for benchmarks and debugging (read them, do not rely on exact values)."""

    requests: int = 0
    decode_steps: int = 0
    decode_row_steps: int = 0
    fast_decode_steps: int = 0  # steps decoded by the lean few-row path (`engine_decode`)
    # Speculative cycles (`engine_speculate`), draft tokens proposed and accepted by the model.
    spec_cycles: int = 0
    spec_drafted: int = 0
    spec_accepted: int = 0
    prefill_calls: int = 0
    prefill_tokens: int = 0
    prefix_reused_tokens: int = 0
    prefix_cached_tokens: int = 0
    rebuilds: int = 0  # cache reallocations (more rows or columns than reserved)
    # Decode attention: key columns read (rows x longest row) and those holding a row's own tokens;
    # 1 - cached / read is the share of attention spent on padding.
    decode_columns_read: int = 0
    decode_columns_cached: int = 0
    busy_s: float = 0.0
    # The engine thread's CPU seconds admitting requests (prefill, shared starts, prefix caching,
    # first tokens) and in decode steps (masks computed on the mask thread are not included).
    admit_cpu_s: float = 0.0
    step_cpu_s: float = 0.0
    mask_row_steps: int = 0
    mask_s: float = 0.0  # computing masks (mostly on the mask thread, overlapping forward passes)
    mask_wait_s: float = 0.0  # the engine thread waiting for masks after a forward pass


def record_token(
    job: Job, token: int, logprob: float | None, eos_ids: set[int], max_len: int, decode: Callable
) -> bool:
    """Record a new token for `job` and return whether it is finished (`job.finish` set).
    `decode(ids) -> str` is used for stop strings."""
    s = job.sampling
    if job.error is None and getattr(job.future, "abandoned", False):
        job.error = ABANDONED
    if job.error is not None:
        job.finish = "error"
    elif token in eos_ids:
        job.finish = "stop"  # under a constraint, EOS is only allowed where the grammar accepts
        if job.matcher is not None and not job.matcher.accepting:
            job.error, job.finish = "the constraint cannot be completed (its language is empty)", "error"
    else:
        job.out_ids.append(token)
        if logprob is not None and s.logprobs:
            job.logprobs.append(logprob)
        if job.matcher is not None:
            if not job.matcher.consume(token):
                job.error, job.finish = f"the constraint rejected a token: {job.matcher.error}", "error"
            elif job.matcher.complete:  # nothing else may follow
                job.finish = "stop"
                if not job.matcher.accepting:
                    job.error, job.finish = "the constraint cannot be completed", "error"
        if s.stop and job.finish is None:
            _check_stop(job, decode)
        if job.on_tokens is not None and job.finish is None:
            try:
                job.on_tokens(list(job.out_ids))
            except Exception:  # a broken listener must not stop the engine
                job.on_tokens = None
        if job.finish is None and (
            len(job.out_ids) >= s.max_new_tokens or len(job.prompt_ids) + len(job.out_ids) >= max_len
        ):
            job.finish = "length"
    return job.finish is not None


def _check_stop(job: Job, decode: Callable) -> None:
    text = decode(job.out_ids)
    longest = max(len(x) for x in job.sampling.stop)
    # Rescan a margin: the newest token may complete a stop string begun earlier (or fix a partial byte).
    start = max(0, job.scanned_chars - longest - 4)
    hits = [i for i in (text.find(stop, start) for stop in job.sampling.stop if stop) if i >= 0]
    if hits:
        job.stop_at = min(hits)
        job.finish = "stop"
    job.scanned_chars = len(text)


def completion(job: Job, tokenizer) -> Completion:
    """The result of a finished job (stop strings cut, logprobs and tokens when asked for)."""

    def decode(ids: list[int]) -> str:
        return tokenizer.decode(ids, skip_special_tokens=True)

    if job.error is not None:
        return Completion(
            text="",
            prompt_tokens=len(job.prompt_ids),
            completion_tokens=len(job.out_ids),
            finish_reason="error",
            error=job.error,
        )
    ids = job.out_ids
    text = decode(ids)
    if job.finish == "length":  # cut inside a multi-byte character: its bytes decode as U+FFFD
        text = text.rstrip("\ufffd")
    if job.stop_at is not None:
        text = text[: job.stop_at]
        # Keep the fewest tokens that still cover the returned text.
        keep = len(ids)
        while keep > 0 and len(decode(ids[: keep - 1])) >= job.stop_at:
            keep -= 1
        ids = ids[:keep]
    want = job.sampling.logprobs
    return Completion(
        text=text,
        prompt_tokens=len(job.prompt_ids),
        completion_tokens=len(ids),
        finish_reason=job.finish or "stop",
        token_logprobs=job.logprobs[: len(ids)] if want else None,
        tokens=tokenizer.convert_ids_to_tokens(ids) if want else None,
    )


def error_completion(job: Job, message: str) -> Completion:
    return Completion(text="", prompt_tokens=len(job.prompt_ids), finish_reason="error", error=message)


def eos_ids(model: torch.nn.Module, tokenizer) -> set[int]:
    """End-of-sequence ids from the generation config and the tokenizer (either may be a list)."""
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    for source in (getattr(gen, "eos_token_id", None), tokenizer.eos_token_id):
        if source is None:
            continue
        ids.update([source] if isinstance(source, int) else list(source))
    return ids
