"""A continuous-batching generation engine for a local transformers model.

Many callers (threads, or asyncio tasks through `agenerate`) submit requests; one background worker
thread keeps a running batch on the device:

- waiting requests are prefilled (padded, only the last position goes through the LM head) and merged
  into the running batch, whose KV cache is right-aligned (see `engine_cache`);
- every decode step advances all running rows by one token, each row with its own sampling settings
  and its own random generator (`engine_sampling`);
- a finished row leaves the batch (its KV rows are dropped at the next rebuild) and its future is
  resolved at once; waiting requests take the free slots;
- when the requests of one prefill share a long token prefix (a judge rubric, a system prompt), the
  prefix is run once and its keys/values are copied to every row;
- across calls, the keys/values of finished requests are kept (`engine_prefix.PrefixCache`), so a
  prompt that extends an earlier conversation (a game agent's next turn) only computes its new tokens;
- a request with a constraint (regex, grammar, JSON schema) gets an llguidance matcher: at each step
  the masks of all constrained rows are computed in one batched call, disallowed tokens get -inf, EOS
  is allowed only where the grammar accepts, and the row finishes ("stop") as soon as its grammar is
  complete (`constraints.TokenMasks`). Unconstrained rows never touch this path.

Why hand-written: transformers 5.23's own continuous batching (`generate_batch` /
`init_continuous_batching`) samples with one global RNG and a batch-wide `do_sample`, so a seeded
request could not reproduce its sample independently of its batch mates, and it has no stop strings.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import torch

from selflab.models.constraints import RowMatcher, TokenMasks
from selflab.models.engine_cache import KVBuffer, merge
from selflab.models.engine_prefix import PrefixCache, PrefixHit
from selflab.models.engine_sampling import choose_tokens
from selflab.models.engine_threads import ThreadTuner
from selflab.models.types import Completion, SamplingParams

# Extra KV columns reserved when a batch is rebuilt, so decode steps rarely reallocate.
_HEADROOM = 64


@dataclass
class _Job:
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
    matcher: RowMatcher | None = None  # grammar state when the request has a constraint
    error: str | None = None  # why a constrained row had to stop (no allowed token)


@dataclass
class EngineStats:
    """Counters for benchmarks and debugging (read them, do not rely on exact values)."""

    requests: int = 0
    decode_steps: int = 0
    decode_row_steps: int = 0
    prefill_calls: int = 0
    prefill_tokens: int = 0
    prefix_reused_tokens: int = 0
    prefix_cached_tokens: int = 0
    rebuilds: int = 0
    busy_s: float = 0.0
    mask_row_steps: int = 0
    mask_s: float = 0.0


def common_prefix_len(seqs: list[list[int]]) -> int:
    """Length of the longest token prefix shared by all sequences."""
    if not seqs:
        return 0
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for s in seqs[1:]:
        i = 0
        while i < n and s[i] == first[i]:
            i += 1
        n = i
    return n


class BatchingEngine:
    """Serves `submit(prompt_ids, sampling)` from many threads with one continuously batched model.

    `threads`: "auto" re-measures whether 1 CPU thread beats torch's default under the current load
    (see `engine_threads`), an int pins torch's thread count, None leaves it alone.
    `max_batch_size` bounds the running batch; `max_prefill_tokens` bounds padded tokens per prefill
    forward; `min_prefix_tokens` is the shortest shared prefix worth computing once; `seed` seeds the
    generator that gives unseeded sampled requests their own seeds (so a run is reproducible).
    `prefix_cache_mb` bounds the keys/values kept from finished requests for later prompts that start
    the same way (0 turns the cache off); call `clear_prefix_cache()` after changing weights in place.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        max_batch_size: int = 64,
        max_prefill_tokens: int = 4096,
        prefix_reuse: bool = True,
        min_prefix_tokens: int = 16,
        seed: int = 0,
        threads: int | str | None = "auto",
        prefix_cache_mb: int = 2048,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_prefill_tokens = max_prefill_tokens
        self.prefix_reuse = prefix_reuse
        self.min_prefix_tokens = min_prefix_tokens
        self.device = next(model.parameters()).device
        config = model.config.get_text_config()
        self.num_layers = int(config.num_hidden_layers)
        limits = [getattr(config, "max_position_embeddings", None), getattr(config, "sliding_window", None)]
        self.max_len = min([int(x) for x in limits if x] or [1 << 30])
        self.eos_ids = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (min(self.eos_ids) if self.eos_ids else 0))
        self.stats = EngineStats()
        self.prefix_cache = (
            PrefixCache(max_bytes=int(prefix_cache_mb) << 20, min_tokens=max(min_prefix_tokens, 16))
            if prefix_cache_mb and int(prefix_cache_mb) > 0
            else None
        )
        self.tuner: ThreadTuner | None = None
        if isinstance(threads, str) and threads.isdigit():  # from a spec string: hf:PATH?threads=1
            threads = int(threads)
        if isinstance(threads, int):
            torch.set_num_threads(threads)
        elif threads == "auto" and self.device.type == "cpu":
            self.tuner = ThreadTuner(hidden=int(getattr(config, "hidden_size", 576)))
        self._seed_rng = random.Random(seed)
        self.vocab_size = int(config.vocab_size)
        self._masks: TokenMasks | None = None
        self._mask_pool: ThreadPoolExecutor | None = None
        self._masks_lock = threading.Lock()
        self._waiting: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        # Running batch (only touched by the worker thread).
        self._buf: KVBuffer | None = None
        self._rows: list[_Job | None] = []
        self._next_pos = torch.zeros(0, dtype=torch.long, device=self.device)
        self._last = torch.zeros(0, dtype=torch.long, device=self.device)
        self._worker = threading.Thread(target=self._run, name="selflab-engine", daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------- public API

    def token_masks(self) -> TokenMasks:
        """llguidance bound to this model's tokenizer (built on first use, about 0.5 s)."""
        with self._masks_lock:
            if self._masks is None:
                self._masks = TokenMasks(self.tokenizer, self.vocab_size, sorted(self.eos_ids))
                self._mask_pool = ThreadPoolExecutor(1, thread_name_prefix="selflab-masks")
            return self._masks

    def submit(self, prompt_ids: list[int], sampling: SamplingParams) -> Future:
        """Queue one request; the future resolves to a `Completion` (never raises for model output).
        Raises `ConstraintError` at once when the request's constraint is invalid."""
        future: Future = Future()
        job = _Job(prompt_ids=list(prompt_ids), sampling=sampling, future=future)
        if sampling.constraint is not None:
            job.matcher = self.token_masks().matcher(sampling.constraint)
        with self._cond:
            if self._stopped:
                raise RuntimeError("the engine is closed")
            if not sampling.greedy:
                seed = sampling.seed if sampling.seed is not None else self._seed_rng.getrandbits(63)
                job.generator = torch.Generator(device="cpu").manual_seed(seed)
            self._waiting.append(job)
            self.stats.requests += 1
            self._cond.notify()
        return future

    def generate(self, items: list[tuple[list[int], SamplingParams]]) -> list[Completion]:
        """Submit all items at once (so they share batches) and wait for every result, in order."""
        futures = [self.submit(ids, sampling) for ids, sampling in items]
        return [f.result() for f in futures]

    async def agenerate(self, prompt_ids: list[int], sampling: SamplingParams) -> Completion:
        """Asyncio version of one `submit`."""
        return await asyncio.wrap_future(self.submit(prompt_ids, sampling))

    def clear_prefix_cache(self) -> None:
        """Forget cached keys/values (required after the model's weights change in place)."""
        with self._cond:
            if self.prefix_cache is not None:
                self.prefix_cache.clear()

    def close(self) -> None:
        """Stop the worker; requests still waiting or running resolve with an error completion."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout=30)
        if self._mask_pool is not None:
            self._mask_pool.shutdown(wait=False)

    # ---------------------------------------------------------------- worker

    def _live(self) -> list[int]:
        return [i for i, job in enumerate(self._rows) if job is not None]

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and not self._waiting and not self._live():
                    self._cond.wait()
                if self._stopped:
                    break
                free = self.max_batch_size - len(self._live())
                admit = [self._waiting.popleft() for _ in range(min(free, len(self._waiting)))]
            started = time.perf_counter()
            if self.tuner is not None:
                self.tuner.maybe_tune()
            try:
                with torch.inference_mode():
                    if admit:
                        self._admit(admit)
                    if self._live():
                        self._step()
            except Exception as exc:  # a failed forward must not hang every caller
                self._fail([*admit, *self._rows], f"{type(exc).__name__}: {exc}")
            self.stats.busy_s += time.perf_counter() - started
        with self._cond:
            leftover = list(self._waiting)
            self._waiting.clear()
        self._fail([*leftover, *self._rows], "the engine was closed")

    def _fail(self, jobs: list[_Job | None], message: str) -> None:
        for job in jobs:
            if job is not None and not job.future.done():
                job.future.set_result(
                    Completion(
                        text="", prompt_tokens=len(job.prompt_ids), finish_reason="error", error=message
                    )
                )
        self._buf, self._rows = None, []
        self._next_pos = self._next_pos[:0]
        self._last = self._last[:0]

    def _admit(self, jobs: list[_Job]) -> None:
        """Prefill new requests (in chunks of similar length) and merge them into the running batch."""
        ready = []
        for job in jobs:
            if not job.future.set_running_or_notify_cancel():
                continue  # the caller cancelled it
            if not job.prompt_ids:
                self._fail_one(job, "empty prompt: nothing to condition on")
            elif len(job.prompt_ids) >= self.max_len:
                self._fail_one(
                    job, f"prompt has {len(job.prompt_ids)} tokens; the model's context is {self.max_len}"
                )
            else:
                ready.append(job)
        if self.prefix_cache is not None:
            with self._cond:  # `clear_prefix_cache` may run on another thread
                for job in ready:
                    job.hit = self.prefix_cache.lookup(job.prompt_ids)
        ready.sort(key=_new_tokens)
        chunks: list[list[_Job]] = []
        for job in ready:
            if chunks and (len(chunks[-1]) + 1) * _new_tokens(job) <= self.max_prefill_tokens:
                chunks[-1].append(job)
            else:
                chunks.append([job])
        parts: list[tuple[KVBuffer, torch.Tensor]] = []
        new_rows: list[_Job] = []
        new_pos: list[int] = []
        new_last: list[int] = []
        live = self._live()
        if self._buf is not None and live:
            parts.append((self._buf, torch.tensor(live, device=self.device)))
        for chunk in chunks:
            buf, logits = self._prefill(chunk)
            tokens, logprobs = self._choose(logits, chunk)
            keep = []
            for r, job in enumerate(chunk):
                lp = float(logprobs[r]) if logprobs is not None else None
                if not self._advance(job, int(tokens[r]), lp):
                    keep.append(r)
                    new_rows.append(job)
                    new_pos.append(len(job.prompt_ids))
                    new_last.append(int(tokens[r]))
            if keep:
                parts.append((buf, torch.tensor(keep, device=self.device)))
        if not new_rows:
            return
        self._rebuild(parts, new_rows, new_pos, new_last)

    def _fail_one(self, job: _Job, message: str) -> None:
        job.future.set_result(
            Completion(text="", prompt_tokens=len(job.prompt_ids), finish_reason="error", error=message)
        )

    def _rebuild(
        self,
        parts: list[tuple[KVBuffer, torch.Tensor]],
        new_rows: list[_Job] | None = None,
        new_pos: list[int] | None = None,
        new_last: list[int] | None = None,
    ) -> None:
        """Drop finished rows, append new ones, right-align everything into one fresh buffer."""
        live = self._live()
        rows = [self._rows[i] for i in live] + (new_rows or [])
        idx = torch.tensor(live, dtype=torch.long, device=self.device)
        pos = torch.cat(
            [self._next_pos[idx], torch.tensor(new_pos or [], dtype=torch.long, device=self.device)]
        )
        last = torch.cat(
            [self._last[idx], torch.tensor(new_last or [], dtype=torch.long, device=self.device)]
        )
        if not rows:
            self._buf, self._rows, self._next_pos, self._last = None, [], pos, last
            return
        self._buf = merge(parts, _HEADROOM)
        self._rows, self._next_pos, self._last = rows, pos, last
        self.stats.rebuilds += 1

    def _prefill(self, jobs: list[_Job]) -> tuple[KVBuffer, torch.Tensor]:
        """Run the prompts of `jobs`. A row may start from keys/values it already has: a prefix-cache
        hit, or a prefix every row shares, computed here once. Row r's known tokens sit just left of
        column `width` (the longest known length), its remaining tokens right-aligned after it.
        Returns the KV buffer and the logits of each prompt's last position."""
        n = len(jobs)
        starts: list[tuple[int, torch.Tensor | None]] = [
            (job.hit.length, job.hit.kv) if job.hit is not None else (0, None) for job in jobs
        ]
        if self.prefix_reuse and n >= 2 and all(kv is None for _, kv in starts):
            ids = [job.prompt_ids for job in jobs]
            prefix = min(common_prefix_len(ids), min(len(x) for x in ids) - 1)
            if prefix >= self.min_prefix_tokens:
                head = KVBuffer(self.num_layers, 1, prefix, self.device)
                head.valid[:, :prefix] = True
                self._forward(
                    head,
                    torch.tensor([ids[0][:prefix]], device=self.device),
                    torch.arange(prefix, device=self.device).unsqueeze(0),
                )
                starts = [(prefix, head.data[:, :, 0, :, :prefix])] * n
                self.stats.prefix_reused_tokens += prefix * (n - 1)
                self.stats.prefill_tokens += prefix
        width = max(c for c, _ in starts)
        rests = [job.prompt_ids[c:] for job, (c, _) in zip(jobs, starts, strict=True)]
        span = max(len(rest) for rest in rests)
        buf = KVBuffer(self.num_layers, n, width + span, self.device)
        input_ids = torch.full((n, span), self.pad_id, dtype=torch.long)
        positions = torch.zeros((n, span), dtype=torch.long)
        for r, ((c, kv), rest) in enumerate(zip(starts, rests, strict=True)):
            if kv is not None:
                if buf.data is None:
                    buf.allocate(kv.shape[2], kv.shape[4], kv.dtype)
                buf.data[:, :, r, :, width - c : width] = kv
                buf.valid[r, width - c : width] = True
            pad = span - len(rest)
            input_ids[r, pad:] = torch.tensor(rest, dtype=torch.long)
            positions[r, pad:] = torch.arange(c, c + len(rest))
            buf.valid[r, width + pad : width + span] = True
        buf.length = width
        logits = self._forward(buf, input_ids.to(self.device), positions.to(self.device))
        self.stats.prefill_calls += 1
        self.stats.prefill_tokens += sum(len(rest) for rest in rests)
        self.stats.prefix_cached_tokens += sum(job.hit.length for job in jobs if job.hit is not None)
        return buf, logits

    def _remember(self, buf: KVBuffer, row: int, job: _Job) -> None:
        """Keep a finished row's keys/values (the tokens fed so far) in the prefix cache."""
        if self.prefix_cache is None:
            return
        cols = buf.valid[row, : buf.length].nonzero().squeeze(1)
        seq = (job.prompt_ids + job.out_ids)[: cols.numel()]
        if len(seq) != cols.numel() or len(seq) < self.prefix_cache.min_tokens:
            return
        kv = buf.data[:, :, row].index_select(3, cols)  # a copy: the batch buffer is reused
        with self._cond:
            self.prefix_cache.put(seq, kv, extends=job.hit.entry if job.hit is not None else None)
        job.hit = None  # drop the reference to the cached tensor

    def _forward(self, buf: KVBuffer, input_ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """One forward over new columns [length, length + q) of `buf` (whose `valid` is already set
        for them). Returns the last position's logits (rows, vocab); advances `buf.length`."""
        q = input_ids.shape[1]
        start = buf.length
        end = start + q
        if q == 1:
            mask = buf.valid[:, :end][:, None, None, :]
        else:
            cols = torch.arange(end, device=self.device)
            qcols = torch.arange(start, end, device=self.device)
            causal = cols[None, :] <= qcols[:, None]
            mask = causal[None] & buf.valid[:, None, :end]
            # A padding query sees itself, so no softmax row is empty (an empty row gives NaN keys/values).
            mask |= (cols[None, :] == qcols[:, None])[None]
            mask = mask[:, None]
        out = self.model(
            input_ids=input_ids,
            position_ids=positions,
            attention_mask=mask,
            past_key_values=buf.writer(),
            use_cache=True,
            logits_to_keep=1,
        )
        buf.length = end
        return out.logits[:, -1, :]

    def _choose(
        self, logits: torch.Tensor, jobs: list[_Job | None], banned: Future | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next tokens for `jobs` (the rows of `logits`). `banned`: the constrained rows' masks,
        already being computed (see `_step`); computed here when it is None and a row needs one."""
        params = [job.sampling if job is not None else None for job in jobs]
        gens = [job.generator if job is not None else None for job in jobs]
        want = any(job is not None and job.sampling.logprobs for job in jobs)
        mask = banned.result() if banned is not None else self._banned(jobs)
        return choose_tokens(logits, params, gens, want, mask)

    def _banned(self, jobs: list[_Job | None]) -> torch.Tensor | None:
        """Masks of disallowed tokens for every row (None when no row is constrained), all
        constrained rows in one llguidance call. A row whose grammar allows no token at all (a
        matcher error) is marked to end with an error; its mask is cleared so sampling stays finite."""
        rows = [(job.matcher, r) for r, job in enumerate(jobs) if job is not None and job.matcher is not None]
        if not rows:
            return None
        started = time.perf_counter()
        banned, dead = self.token_masks().banned(rows, len(jobs))
        for r in dead:
            job = jobs[r]
            job.error = "the constraint allows no next token" + (
                f": {job.matcher.error}" if job.matcher.error else ""
            )
            banned[r] = False
        self.stats.mask_row_steps += len(rows)
        self.stats.mask_s += time.perf_counter() - started
        return banned

    def _banned_soon(self) -> Future | None:
        """Start computing the running batch's masks on the mask thread, so that llguidance (which
        releases the GIL) overlaps the forward pass: a mask needs only the tokens already chosen."""
        if self._mask_pool is None or not any(
            job is not None and job.matcher is not None for job in self._rows
        ):
            return None
        return self._mask_pool.submit(self._banned, list(self._rows))

    def _step(self) -> None:
        """One decode step for every row of the running batch."""
        buf = self._buf
        assert buf is not None
        buf.ensure_capacity(1)
        buf.valid[:, buf.length] = True
        banned = self._banned_soon()
        logits = self._forward(buf, self._last.unsqueeze(1), self._next_pos.unsqueeze(1))
        self._next_pos += 1
        tokens, logprobs = self._choose(logits, self._rows, banned)
        self.stats.decode_steps += 1
        tokens_list = tokens.tolist()
        lps = logprobs.tolist() if logprobs is not None else None
        dead = 0
        for r, job in enumerate(self._rows):
            if job is None:
                dead += 1
                continue
            self.stats.decode_row_steps += 1
            if self._advance(job, tokens_list[r], lps[r] if lps is not None else None, kv=(buf, r)):
                self._rows[r] = None
                dead += 1
        self._last = tokens
        if dead == len(self._rows):
            self._rebuild([])
        elif dead and (dead * 4 >= len(self._rows) or self._has_waiting()):
            self._rebuild([(buf, torch.tensor(self._live(), device=self.device))])

    def _has_waiting(self) -> bool:
        with self._cond:
            return bool(self._waiting)

    def _advance(
        self, job: _Job, token: int, logprob: float | None, kv: tuple[KVBuffer, int] | None = None
    ) -> bool:
        """Record a new token for `job`; when it is finished, keep its keys/values (`kv`: its buffer
        and row) in the prefix cache, then resolve its future (so a caller's next prompt can hit the
        cache) and return True."""
        s = job.sampling
        if job.error is not None:
            job.finish = "error"
        elif token in self.eos_ids:
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
                self._check_stop(job)
            if job.finish is None and (
                len(job.out_ids) >= s.max_new_tokens or len(job.prompt_ids) + len(job.out_ids) >= self.max_len
            ):
                job.finish = "length"
        if job.finish is None:
            return False
        if kv is not None:
            self._remember(*kv, job)
        job.future.set_result(self._completion(job))
        return True

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _check_stop(self, job: _Job) -> None:
        text = self._decode(job.out_ids)
        longest = max(len(x) for x in job.sampling.stop)
        # Rescan a margin: the newest token may complete a stop string begun earlier (or fix a partial byte).
        start = max(0, job.scanned_chars - longest - 4)
        hits = [i for i in (text.find(stop, start) for stop in job.sampling.stop if stop) if i >= 0]
        if hits:
            job.stop_at = min(hits)
            job.finish = "stop"
        job.scanned_chars = len(text)

    def _completion(self, job: _Job) -> Completion:
        if job.error is not None:
            return Completion(
                text="",
                prompt_tokens=len(job.prompt_ids),
                completion_tokens=len(job.out_ids),
                finish_reason="error",
                error=job.error,
            )
        ids = job.out_ids
        text = self._decode(ids)
        if job.stop_at is not None:
            text = text[: job.stop_at]
            # Keep the fewest tokens that still cover the returned text.
            keep = len(ids)
            while keep > 0 and len(self._decode(ids[: keep - 1])) >= job.stop_at:
                keep -= 1
            ids = ids[:keep]
        want = job.sampling.logprobs
        return Completion(
            text=text,
            prompt_tokens=len(job.prompt_ids),
            completion_tokens=len(ids),
            finish_reason=job.finish or "stop",
            token_logprobs=job.logprobs[: len(ids)] if want else None,
            tokens=self.tokenizer.convert_ids_to_tokens(ids) if want else None,
        )


def _new_tokens(job: _Job) -> int:
    """Prompt tokens a prefill must still compute for `job`."""
    return len(job.prompt_ids) - (job.hit.length if job.hit is not None else 0)


def _eos_ids(model: torch.nn.Module, tokenizer) -> set[int]:
    """End-of-sequence ids from the generation config and the tokenizer (either may be a list)."""
    ids: set[int] = set()
    gen = getattr(model, "generation_config", None)
    for source in (getattr(gen, "eos_token_id", None), tokenizer.eos_token_id):
        if source is None:
            continue
        ids.update([source] if isinstance(source, int) else list(source))
    return ids
