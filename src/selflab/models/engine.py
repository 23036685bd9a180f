"""A continuous-batching generation engine for a local transformers model.

Many callers (threads, or asyncio tasks through `agenerate`) submit requests; one background worker
thread keeps a running batch on the device:

- waiting requests are prefilled, packed without padding into short sequences (`engine_prefill`;
  only each prompt's last position goes through the LM head), and join the running batch, whose
  KV cache keeps one slot per row (`engine_slots`);
- every decode step advances all running rows by one token, each row with its own sampling settings
  and its own random generator (`engine_sampling`); attention runs in groups of rows of similar
  length, so a short row does not read a long row's padding (`engine_attention`);
- a single unconstrained row (a sequential caller, interactive use) is decoded speculatively: a
  4-bit copy of the model drafts a few tokens and the model checks them in one pass, keeping its
  own tokens, seeded samples included (`engine_speculate`);
- a finished row leaves the batch at once (the last row moves into its slot) and its future is
  resolved; waiting requests take the free slots;
- when requests admitted together share a long token prefix (a judge rubric, a system prompt, a game's
  rules), the prefix is run once, before the prompts are split into packs (`engine_shared`), and
  every row attends to its keys/values;
- across calls, the keys/values of prompts (at admission) and of finished requests are kept
  (`engine_prefix.PrefixCache`), so a prompt that extends an earlier conversation (a game agent's
  next turn) only computes its new tokens;
- a request with a constraint (regex, grammar, JSON schema) gets an llguidance matcher: at each step
  the masks of all constrained rows are computed in one batched call, disallowed tokens get -inf, EOS
  is allowed only where the grammar accepts, and the row finishes ("stop") as soon as its grammar is
  complete (`engine_masks`, `constraints.TokenMasks`). Unconstrained rows never touch this path.

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
from collections.abc import Callable
from concurrent.futures import Future

import torch

from selflab.models.constraints import TokenMasks
from selflab.models.engine_attention import plan_groups, use_grouped_attention
from selflab.models.engine_cache import cache_kwargs
from selflab.models.engine_decode import FastDecoder, weights_version
from selflab.models.engine_jobs import (
    EngineStats,
    Job,
    JobFuture,
    completion,
    eos_ids,
    error_completion,
    record_token,
)
from selflab.models.engine_masks import EngineMasks
from selflab.models.engine_prefill import PACK_TOKENS, PrefillRow, common_prefix_len, packed_prefill, packs
from selflab.models.engine_prefix import PrefixCache
from selflab.models.engine_sampling import choose_tokens
from selflab.models.engine_shared import cache_finished, cache_prompts, share_prefixes
from selflab.models.engine_slots import SlotCache
from selflab.models.engine_speculate import Speculator
from selflab.models.engine_threads import ThreadTuner
from selflab.models.types import Completion, SamplingParams

__all__ = ["BatchingEngine", "EngineStats", "common_prefix_len"]

# An empty running batch keeps its cache's memory this long, then gives it back. Callers that play
# ticks (self-play) or evaluate in chunks come back within milliseconds: allocating the buffer anew
# each call (~1.4 GB at 64 rows for the embedded model) cost them 18% of the engine's admission
# time in page faults; a model trained between calls gets the memory back.
IDLE_RELEASE_S = 2.0


class BatchingEngine:
    """Serves `submit(prompt_ids, sampling)` from many threads with one continuously batched model.

    `threads`: "auto" re-measures whether 1 CPU thread beats torch's default under the current load
    (see `engine_threads`), an int pins torch's thread count, None leaves it alone.
    `max_batch_size` bounds the running batch; `max_prefill_tokens` bounds new tokens per prefill
    forward; `min_prefix_tokens` is the shortest shared prefix worth computing once; `seed` seeds the
    generator that gives unseeded sampled requests their own seeds (so a run is reproducible).
    `prefix_cache_mb` bounds the keys/values kept from finished requests for later prompts that start
    the same way (0 turns the cache off); it is cleared by itself when the weights change between
    calls (`_follow_weights`).
    `attention_groups` > 1 splits decode attention into groups of rows of similar length
    (`engine_attention`; it switches an "sdpa" model to the equivalent grouped function).
    `decoder`: a lean decode path (`engine_decode`: the model's weights by default, or low-bit
    copies), used for steps of at most `decoder.max_rows` rows; other steps use the model's forward.
    `speculator`: drafts tokens with a low-bit copy that `decoder` checks, for few unconstrained rows
    (`engine_speculate`).
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
        attention_groups: int = 4,
        decoder: FastDecoder | None = None,
        speculator: Speculator | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch_size = max_batch_size
        self.max_prefill_tokens = max_prefill_tokens
        self.prefix_reuse = prefix_reuse
        self.min_prefix_tokens = min_prefix_tokens
        # Decode attention in up to this many groups of rows of similar length (1: one padded group).
        self.attention_groups = attention_groups
        self.decoder = decoder
        self._lean = decoder is not None  # whether the decoder serves few-row steps
        self.speculator = speculator
        self._weights = weights_version(model)
        self._grouped = attention_groups > 1 and use_grouped_attention(model)
        self.device = next(model.parameters()).device
        config = model.config.get_text_config()
        self.num_layers = int(config.num_hidden_layers)
        limits = [getattr(config, "max_position_embeddings", None), getattr(config, "sliding_window", None)]
        self.max_len = min([int(x) for x in limits if x] or [1 << 30])
        self.eos_ids = eos_ids(model, tokenizer)
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
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        # The width of the logits (masks must match it), which may exceed the tokenizer's vocabulary.
        self.vocab_size = int(head.weight.shape[0]) if head is not None else int(config.vocab_size)
        self.masks = EngineMasks(tokenizer, self.vocab_size, self.eos_ids)
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopped = False
        # Running batch (only touched by the worker thread).
        self._cache = SlotCache(self.num_layers, self.device)
        self._rows: list[Job] = []
        self._next_pos = torch.zeros(0, dtype=torch.long, device=self.device)
        self._last = torch.zeros(0, dtype=torch.long, device=self.device)
        self._worker = threading.Thread(target=self._run, name="selflab-engine", daemon=True)
        self._worker.start()

    # ---------------------------------------------------------------- public API

    def token_masks(self) -> TokenMasks:
        """llguidance bound to this model's tokenizer (built on first use, about 0.5 s)."""
        return self.masks.token_masks()

    def submit(
        self,
        prompt_ids: list[int],
        sampling: SamplingParams,
        on_tokens: Callable[[list[int]], None] | None = None,
    ) -> Future:
        """Queue one request; the future resolves to a `Completion` (never raises for model output).
        Raises `ConstraintError` at once when the request's constraint is invalid. `on_tokens`, for
        streaming, is called on the engine thread with a copy of the generated ids after each new
        token (it must return quickly, e.g. put them on a queue)."""
        future = JobFuture()  # `abandon()` stops the row mid-decode (a disconnected stream)
        job = Job(prompt_ids=list(prompt_ids), sampling=sampling, future=future, on_tokens=on_tokens)
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

    def submit_all(self, items: list[tuple[list[int], SamplingParams]]) -> list[Future]:
        """`submit` every item under one lock hold, so one admission step sees them all (and computes
        the starts they share once, `engine_shared`)."""
        with self._cond:
            return [self.submit(ids, sampling) for ids, sampling in items]

    def generate(self, items: list[tuple[list[int], SamplingParams]]) -> list[Completion]:
        """Submit all items at once (so they share batches) and wait for every result, in order."""
        return [f.result() for f in self.submit_all(items)]

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
        self.masks.close()

    # ---------------------------------------------------------------- worker

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and not self._waiting and not self._rows:
                    if self._cache.data is None:
                        self._cond.wait()
                    elif not self._cond.wait(timeout=IDLE_RELEASE_S):
                        self._cache = SlotCache(self.num_layers, self.device)  # idle: memory back
                if self._stopped:
                    break
                free = self.max_batch_size - len(self._rows)
                admit = [self._waiting.popleft() for _ in range(min(free, len(self._waiting)))]
            started = time.perf_counter()
            if self.tuner is not None:
                self.tuner.maybe_tune()
            try:
                with torch.inference_mode():
                    cpu = time.thread_time()  # this thread's CPU seconds: robust to other processes
                    if admit:
                        self._admit(admit)
                    mid = time.thread_time()
                    if self._rows:
                        self._step()
                    self.stats.admit_cpu_s += mid - cpu
                    self.stats.step_cpu_s += time.thread_time() - mid
            except Exception as exc:  # a failed forward must not hang every caller
                self._fail([*admit, *self._rows], f"{type(exc).__name__}: {exc}")
            self.stats.busy_s += time.perf_counter() - started
        with self._cond:
            leftover = list(self._waiting)
            self._waiting.clear()
        self._fail([*leftover, *self._rows], "the engine was closed")

    def _fail(self, jobs: list[Job], message: str) -> None:
        for job in jobs:
            if not job.future.done():
                job.future.set_result(error_completion(job, message))
        self._cache = SlotCache(self.num_layers, self.device)
        self._rows = []
        self._next_pos = self._next_pos[:0]
        self._last = self._last[:0]

    def _follow_weights(self) -> None:
        """Weights changed between calls (training in place, loading a state dict, an adapter put in):
        cached keys/values and the lean decoder's copies were computed from the old ones, so both
        are remade. Checked once per admission (~0.5-1 ms for SmolLM2-135M's 272 tensors)."""
        version = weights_version(self.model)
        if version == self._weights:
            return
        self._weights = version
        self.clear_prefix_cache()
        self._lean = self.decoder is not None and self.decoder.refresh()
        if self.speculator is not None and not self.speculator.refresh():
            self.speculator = None

    def _admit(self, jobs: list[Job]) -> None:
        """Prefill new requests (packed, in chunks of at most `PACK_TOKENS` new tokens, or
        `max_prefill_tokens` if smaller) and append them to the running batch."""
        self._follow_weights()
        ready = []
        for job in jobs:
            if not job.future.set_running_or_notify_cancel():
                continue  # the caller cancelled it
            if not job.prompt_ids:
                job.future.set_result(error_completion(job, "empty prompt: nothing to condition on"))
            elif len(job.prompt_ids) >= self.max_len:
                message = f"prompt has {len(job.prompt_ids)} tokens; the model's context is {self.max_len}"
                job.future.set_result(error_completion(job, message))
            else:
                ready.append(job)
        # Cached starts, after computing once the starts several prompts share (`engine_shared`; the
        # lock: `clear_prefix_cache` may run on another thread).
        share = self.min_prefix_tokens if self.prefix_reuse else None
        share_prefixes(self.model, self.num_layers, self.device, ready, self.prefix_cache, self._cond, share, self.stats)  # fmt: skip
        limit = min(self.max_prefill_tokens, PACK_TOKENS)
        chunks = [[ready[i] for i in pack] for pack in packs([job.new_tokens for job in ready], limit)]
        joining: list[tuple[Job, list[torch.Tensor], int]] = []
        for chunk in chunks:
            pieces, logits = self._prefill(chunk)
            cache_prompts(chunk, pieces, self.prefix_cache, self._cond)  # at admission, not at finish
            tokens, logprobs = self._choose(logits, chunk)
            for r, job in enumerate(chunk):
                lp = float(logprobs[r]) if logprobs is not None else None
                if not self._advance(job, int(tokens[r]), lp):
                    joining.append((job, pieces[r], int(tokens[r])))
        if not joining:
            return
        # Longest first: new rows go after the running ones (which are usually longer), so the
        # batch stays roughly sorted by length and attention groups (`engine_attention`) pay off.
        joining.sort(key=lambda item: -len(item[0].prompt_ids))
        before = self._cache.reallocations
        self._cache.add([kv for _, kv, _ in joining], self.max_batch_size)
        self.stats.rebuilds += self._cache.reallocations - before
        self._rows.extend(job for job, _, _ in joining)
        new_pos = torch.tensor([len(job.prompt_ids) for job, _, _ in joining], device=self.device)
        new_last = torch.tensor([token for _, _, token in joining], device=self.device)
        self._next_pos = torch.cat([self._next_pos, new_pos])
        self._last = torch.cat([self._last, new_last])

    def _prefill(self, jobs: list[Job]) -> tuple[list[list[torch.Tensor]], torch.Tensor]:
        """Run the prompts of `jobs` in one packed forward pass (`engine_prefill`). A row may start
        from keys/values it already has (`job.hit`: a prefix-cache hit, or a start it shares with
        other prompts of this step, computed once by `engine_shared`). Returns each row's keys/values
        (as pieces) and its last position's logits."""
        rows = [
            PrefillRow(job.prompt_ids[job.hit.length :], job.hit.length, job.hit.kv)
            if job.hit is not None
            else PrefillRow(job.prompt_ids)
            for job in jobs
        ]
        result = packed_prefill(self.model, self.num_layers, rows, self.device)
        self.stats.prefill_calls += 1
        self.stats.prefill_tokens += sum(len(row.ids) for row in rows)
        if self.prefix_cache is not None:  # else the hits are starts shared within this step
            self.stats.prefix_cached_tokens += sum(job.hit.length for job in jobs if job.hit is not None)
        for job in jobs:
            job.hit = None  # drop the reference to the cached tensor
        return result.pieces, result.logits

    def _choose(
        self, logits: torch.Tensor, jobs: list[Job], banned: Future | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Next tokens for `jobs` (the rows of `logits`). `banned`: the constrained rows' masks,
        already being computed (`engine_masks`, see `_step`); computed here when it is None and a
        row needs one."""
        params: list[SamplingParams | None] = [job.sampling for job in jobs]
        gens = [job.generator for job in jobs]
        want = any(job.sampling.logprobs for job in jobs)
        if banned is not None:
            started = time.perf_counter()
            mask = banned.result()
            self.stats.mask_wait_s += time.perf_counter() - started
        else:
            mask = self.masks.banned(jobs, self.stats)
        return choose_tokens(logits, params, gens, want, mask)

    def _step(self) -> None:
        """One decode step for every row of the running batch (or, for few unconstrained rows, a
        speculative cycle: `engine_speculate`); finished rows leave it at once."""
        cache = self._cache
        before = cache.reallocations
        positions = self._next_pos
        spec = self.speculator
        if spec is not None and self._lean and spec.serves(self._rows):
            cache.ensure_columns(spec.tokens + 1)
            cycle = spec.cycle(self._last, positions, cache, self._rows)
            self.stats.spec_cycles += 1
            self.stats.spec_drafted += cycle.drafted
            self.stats.spec_accepted += cycle.accepted
            self._emit(cycle.tokens, cycle.logprobs, positions)
        else:
            started = time.perf_counter()
            cache.ensure_columns()
            tokens, logprobs = self._decode_step(positions)
            if spec is not None and spec.eligible(self._rows):  # what a cycle must beat
                spec.observe_plain(time.perf_counter() - started)
            lps = logprobs.tolist() if logprobs is not None else [None] * len(self._rows)
            self._emit([[t] for t in tokens.tolist()], [[lp] for lp in lps], positions)
        self.stats.rebuilds += cache.reallocations - before

    def _decode_step(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Feed every row its newest token (at `positions`, written to the cache) and choose the next."""
        cache = self._cache
        banned = self.masks.banned_soon(self._rows, self.stats)
        span = max(cache.lengths) + 1
        groups = [(0, len(self._rows), span)]
        extra = {}
        if self._grouped:
            groups = plan_groups(cache.lengths, self.attention_groups)
            if len(groups) > 1:
                extra["selflab_groups"] = groups
        if self._lean and self.decoder is not None and len(self._rows) <= self.decoder.max_rows:
            logits = self.decoder.step(self._last, positions, cache, groups)
            self.stats.fast_decode_steps += 1
        else:
            mask = torch.arange(span, device=self.device)[None, :] <= positions[:, None]
            out = self.model(
                input_ids=self._last.unsqueeze(1),
                position_ids=positions.unsqueeze(1),
                attention_mask=mask[:, None, None, :],
                **cache_kwargs(self.model, cache.decode_writer(positions)),
                use_cache=True,
                logits_to_keep=1,
                **extra,
            )
            logits = out.logits[:, -1, :]
        self.stats.decode_steps += 1
        self.stats.decode_row_steps += len(self._rows)
        self.stats.decode_columns_read += sum((r1 - r0) * cols for r0, r1, cols in groups)
        self.stats.decode_columns_cached += sum(cache.lengths)
        return self._choose(logits, self._rows, banned)

    def _emit(
        self, tokens: list[list[int]], logprobs: list[list[float | None]], positions: torch.Tensor
    ) -> None:
        """Record each row's new tokens (`tokens[r]`; the cache holds keys/values up to each one's
        column, `positions[r]` + i), drop finished rows and keep each row's newest token to feed."""
        cache = self._cache
        starts = positions.tolist()
        dead = []
        for r, job in enumerate(self._rows):
            for i, token in enumerate(tokens[r]):
                cache.lengths[r] = starts[r] + i + 1  # keys/values of the tokens before this one
                if self._advance(job, token, logprobs[r][i], row=r):
                    dead.append(r)
                    break
        self._next_pos = torch.tensor(cache.lengths, device=self.device)
        self._last = torch.tensor([row[-1] for row in tokens], device=self.device)
        if dead:
            order = cache.remove(dead)
            self._rows = [self._rows[i] for i in order]
            index = torch.tensor(order, dtype=torch.long, device=self.device)
            self._next_pos = self._next_pos[index]
            self._last = self._last[index]

    def _advance(self, job: Job, token: int, logprob: float | None, row: int | None = None) -> bool:
        """Record a new token for `job`; when it is finished, keep its keys/values (`row`: its row in
        the running batch) in the prefix cache, then resolve its future (so a caller's next prompt
        can hit the cache) and return True."""
        if not record_token(job, token, logprob, self.eos_ids, self.max_len, self._decode):
            return False
        if row is not None:
            cache_finished(self._cache.row(row), job, self.prefix_cache, self._cond)
        job.future.set_result(completion(job, self.tokenizer))
        return True

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)
