"""Constraint masks for the batching engine: llguidance bound to the model's tokenizer (built on
first use), the disallowed-token masks of every constrained row of a batch in one call, and a
helper thread that computes the running batch's masks while the forward pass runs (llguidance
releases the GIL; a mask needs only the tokens already chosen). Unconstrained batches never get
here."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import torch

from selflab.models.constraints import TokenMasks
from selflab.models.engine_jobs import EngineStats, Job


class EngineMasks:
    """The engine's llguidance state: `token_masks()` (lazy), `banned` and `banned_soon`."""

    def __init__(self, tokenizer, vocab_size: int, eos_ids: set[int]) -> None:
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.eos_ids = eos_ids
        self._masks: TokenMasks | None = None
        self._mask_pool: ThreadPoolExecutor | None = None
        self._masks_lock = threading.Lock()

    def token_masks(self) -> TokenMasks:
        """llguidance bound to this model's tokenizer (built on first use, about 0.5 s)."""
        with self._masks_lock:
            if self._masks is None:
                self._masks = TokenMasks(self.tokenizer, self.vocab_size, sorted(self.eos_ids))
                self._mask_pool = ThreadPoolExecutor(1, thread_name_prefix="selflab-masks")
            return self._masks

    def banned(self, jobs: list[Job], stats: EngineStats) -> torch.Tensor | None:
        """Masks of disallowed tokens for every row (None when no row is constrained), all
        constrained rows in one llguidance call. A row whose grammar allows no token at all (a
        matcher error) is marked to end with an error; its mask is cleared so sampling stays finite."""
        rows = [(job.matcher, r) for r, job in enumerate(jobs) if job.matcher is not None]
        if not rows:
            return None
        started = time.perf_counter()
        banned, dead = self.token_masks().banned(rows, len(jobs))
        for r in dead:
            job = jobs[r]
            matcher = job.matcher
            assert matcher is not None
            job.error = "the constraint allows no next token" + (
                f": {matcher.error}" if matcher.error else ""
            )
            banned[r] = False
        stats.mask_row_steps += len(rows)
        stats.mask_s += time.perf_counter() - started
        return banned

    def banned_soon(self, jobs: list[Job], stats: EngineStats) -> Future | None:
        """Start computing the masks of `jobs` (the running batch) on the mask thread, so that
        llguidance overlaps the forward pass; None when no row is constrained."""
        if self._mask_pool is None or not any(job.matcher is not None for job in jobs):
            return None
        return self._mask_pool.submit(self.banned, list(jobs), stats)

    def close(self) -> None:
        """Stop the mask thread (without waiting for a mask being computed)."""
        if self._mask_pool is not None:
            self._mask_pool.shutdown(wait=False)
