"""Speculative decoding of a single stream: a low-bit copy of the same model drafts, the model checks.

Why: a decode step of one row streams every weight from memory for one multiply-add each
(SmolLM2-135M in fp32: 538 MB per step, ~40-50 ms on a 2-core machine), while a step over a few
rows costs little more (5 rows ~1.35-1.5 steps, MKL-packed weights). A 4-bit copy of the same
weights (`int4-g32`, its head 8-bit: ~90 MB) steps in ~18-26 ms and agrees with the model on most
next tokens (the generation benchmark's chat requests: 98.4% of greedy tokens, 94.8% of sampled
ones drawn with the same random number). So the draft proposes `k` tokens one by one, and the model
checks all of them in one forward pass of k + 1 tokens (`FastDecoder.extend`).

Output is the model's, not the draft's:

- greedy rows keep the model's argmax at every position; the first position where the draft
  disagrees ends the accepted run, and the model's token there is emitted too (so a cycle emits
  1 .. k + 1 tokens);
- sampled rows sample the model's distribution with the *same* uniform number the draft used at
  that position (each row draws one number per token from its own generator, `engine_sampling`),
  and the generator is left exactly where it would be after as many plain steps. So a seeded
  request gives the tokens a plain decode would give, not only the same distribution (rejection
  sampling, the usual scheme, would give other samples for the same seed);
- keys/values of the accepted tokens are the model's: the check pass overwrites the draft's.

Logits of the check pass come from matmuls over k + 1 rows (MKL-packed weights from 4 rows), which
may differ from a single row's in the last bits, as in any batch of rows; every greedy and sampled
text of the measured A/B runs was identical with and without speculation. Constrained rows are not
speculated (their grammar state would have to be rolled back). A cycle serves any number of rows,
each keeping its own run, but at 8 rows it was slower than plain steps (a step of 8 rows is no
longer bound by its weights), so the engine speculates only when one row is running.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from selflab.models.engine_decode import FastDecoder
from selflab.models.engine_formats import DENSE
from selflab.models.engine_jobs import Job
from selflab.models.engine_sampling import choose_tokens
from selflab.models.engine_slots import SlotCache
from selflab.models.lowbit import int4_available, int8_available
from selflab.models.types import SamplingParams

# Tokens the draft proposes per cycle, and the most rows a cycle serves (see `engine.py`'s step).
DRAFT_TOKENS = 4
SPEC_MAX_ROWS = 1
# Below this share of accepted draft tokens a cycle costs more than plain steps (a draft step costs
# ~0.4-0.55 of a plain one, a check of 5 tokens ~1.4: 4 drafts + 1 check ~3-3.6 steps for 1 + 4s
# tokens).
MIN_ACCEPTANCE = 0.5
# The share is a running average over about this many draft tokens.
ACCEPTANCE_WINDOW = 64
# After the share fell below MIN_ACCEPTANCE, or cycles took longer per token than plain steps, this
# many plain steps before trying again.
PAUSE_STEPS = 32
# Cycles must beat plain steps on this machine (with kernels limited to AVX2 the 4-bit draft steps
# at ~0.6 of a plain step and the gain can vanish): both are timed (running averages, this weight
# for the newest; a cycle's seconds and tokens are averaged apart, so one early miss does not
# count as a slow machine), and one step in this many is plain to keep the plain time current.
TIME_WEIGHT = 0.1
PROBE_EVERY = 32


# `hf:PATH?speculate=...`: "auto", "none", or a draft format.
DRAFT_FORMATS = ("int4-g32", "int4-g64", "int4-g128", "int8", "int8-dynamic", "fp16")


def draft_format(option: str) -> str | None:
    """The draft format `speculate=option` names, or None for no speculation. "auto": 4-bit weights
    in groups of 32 (the int4 head stays 8-bit: a 4-bit head cut the accepted share from 0.84-0.88
    to 0.64), else 8-bit weights; None where neither kernel exists. fbgemm's int8 with dynamic
    activations (`int8-dynamic`) drafts poorly on SmolLM2 (0.66 accepted: its outlier channels)."""
    if option in ("none", "off", "false"):
        return None
    if option == "auto":
        if int4_available() and int8_available():
            return "int4-g32"
        return "int8" if int8_available() else None
    if option not in DRAFT_FORMATS:
        raise ValueError(
            f"unknown speculate option '{option}'; use auto, none or one of {', '.join(DRAFT_FORMATS)}"
        )
    return option


def speculator_for(
    model: nn.Module, target: FastDecoder | None, option: str, tokens: int = DRAFT_TOKENS
) -> Speculator | None:
    """A speculator for `model` whose lean decoder is `target`, drafting in the format `option`
    names (`draft_format`), or None: no lean decoder, or one that already decodes in a low-bit
    format (its own steps are the draft's speed), or a model other than fp32 under "auto" (a bf16
    model's own step is already half the bytes: not measured)."""
    fmt = draft_format(option)
    if fmt is None or target is None or target.fmt != DENSE:
        return None
    if option == "auto" and next(model.parameters()).dtype != torch.float32:
        return None
    return Speculator(target, FastDecoder(model, fmt), tokens)


@dataclass
class Cycle:
    """What one speculative cycle gives each row: its next tokens (the model's, 1 .. k + 1) and
    their log-probabilities (None unless a row asked for them)."""

    tokens: list[list[int]]
    logprobs: list[list[float | None]]
    drafted: int
    accepted: int


class Speculator:
    """Drafts with `draft` (a low-bit `FastDecoder` of the model) and checks with `target` (the
    model's own `FastDecoder`). Pauses while it does not pay: when the share of accepted draft
    tokens is too low (a model its low-bit copy imitates badly) or, with `timed`, when cycles take
    longer per token than the plain steps the engine reports (`observe_plain`)."""

    def __init__(
        self,
        target: FastDecoder,
        draft: FastDecoder,
        tokens: int = DRAFT_TOKENS,
        max_rows: int = SPEC_MAX_ROWS,
        timed: bool = True,
    ) -> None:
        if tokens < 1:
            raise ValueError(f"draft tokens must be >= 1, got {tokens}")
        self.target = target
        self.draft = draft
        self.tokens = tokens
        self.max_rows = max_rows
        # Running share of draft tokens accepted, from a modest start so that a draft that keeps
        # missing is paused after a few cycles (~6).
        self.acceptance = MIN_ACCEPTANCE + 0.2
        self.timed = timed
        self.plain_s: float | None = None  # seconds per token: plain steps of an eligible batch
        self._cycle: tuple[float, float] | None = None  # running averages: seconds, tokens per row
        self._pause = 0
        self._since_probe = 0

    def refresh(self) -> bool:
        """Remake the draft's copies after the weights changed (False: it cannot serve the model)."""
        return self.draft.refresh()

    def eligible(self, jobs: list[Job]) -> bool:
        """Whether `jobs` could be speculated: few rows, none constrained (its grammar state would
        need rolling back), one with more than one token to go."""
        return (
            len(jobs) <= self.max_rows
            and all(job.matcher is None for job in jobs)
            and any(_left(job) > 1 for job in jobs)
        )

    def serves(self, jobs: list[Job]) -> bool:
        """Whether the next step of `jobs` should be a speculative cycle (else a plain step, which
        the engine times for `observe_plain` when `jobs` are eligible)."""
        if not self.eligible(jobs):
            return False
        if self._pause > 0:
            self._pause -= 1
            return False
        if self.timed and (self.plain_s is None or self._since_probe >= PROBE_EVERY):
            self._since_probe = 0
            return False
        return True

    @property
    def cycle_s(self) -> float | None:
        """Seconds per token of the cycles so far (running averages), None before the first."""
        return self._cycle[0] / self._cycle[1] if self._cycle is not None else None

    def observe_plain(self, seconds: float) -> None:
        """A plain step of an eligible batch took `seconds` (one token per row)."""
        self.plain_s = seconds if self.plain_s is None else _blend(self.plain_s, seconds)

    def cycle(self, last: torch.Tensor, positions: torch.Tensor, cache: SlotCache, jobs: list[Job]) -> Cycle:
        """Draft `tokens` tokens per row after `last` (each row's newest token, at `positions`),
        check them in one pass, and return the model's tokens (see the module docstring). Keys and
        values are written up to column positions + k; the caller advances each row's length by
        the tokens it keeps."""
        started = time.perf_counter()
        rows = len(jobs)
        k = min(self.tokens, max(_left(job) for job in jobs) - 1)
        params: list[SamplingParams | None] = [job.sampling for job in jobs]
        gens = [job.generator for job in jobs]
        want = any(job.sampling.logprobs for job in jobs)
        start = [g.get_state() if g is not None else None for g in gens]
        span = max(cache.lengths) + 1
        drafts = [last]
        for j in range(k):
            logits = self.draft.step(drafts[-1], positions + j, cache, [(0, rows, span + j)])
            drafts.append(choose_tokens(logits, params, gens, False)[0])
        for g, state in zip(gens, start, strict=True):
            if g is not None:
                g.set_state(state)
        proposed = torch.stack(drafts, dim=1)  # (rows, k + 1): the newest token, then the draft's
        logits = self.target.extend(proposed, positions, cache, [(0, rows, span + k)])
        chosen, logprobs, states = [], [], []
        for j in range(k + 1):  # each position draws the same uniform number the draft drew there
            token, lp = choose_tokens(logits[:, j], params, gens, want)
            chosen.append(token)
            logprobs.append(lp)
            states.append([g.get_state() if g is not None else None for g in gens])
        picks = torch.stack(chosen, dim=1)
        # Draft tokens accepted per row: the run of positions where the model chose the draft's token.
        runs = (picks[:, :k] == proposed[:, 1:]).int().cumprod(dim=1).sum(dim=1).tolist()
        out_tokens, out_logprobs = [], []
        for r, n in enumerate(runs):
            generator = gens[r]
            if generator is not None:  # where n + 1 plain steps would have left it
                generator.set_state(states[n][r])
            out_tokens.append(picks[r, : n + 1].tolist())
            out_logprobs.append([float(lp[r]) if lp is not None else None for lp in logprobs[: n + 1]])
        accepted = sum(runs)
        self._account(accepted, rows * k, time.perf_counter() - started, accepted / rows + 1)
        return Cycle(out_tokens, out_logprobs, drafted=rows * k, accepted=accepted)

    def _account(self, accepted: int, drafted: int, seconds: float, tokens: float) -> None:
        self._since_probe += 1
        self._cycle = (
            (seconds, tokens)
            if self._cycle is None
            else (_blend(self._cycle[0], seconds), _blend(self._cycle[1], tokens))
        )
        if drafted:
            weight = min(1.0, drafted / ACCEPTANCE_WINDOW)
            self.acceptance = (1 - weight) * self.acceptance + weight * accepted / drafted
        cycle_s = self.cycle_s
        slower = self.timed and self.plain_s is not None and cycle_s is not None and cycle_s > self.plain_s
        if self.acceptance < MIN_ACCEPTANCE or slower:
            self._pause = PAUSE_STEPS
            self.acceptance = max(self.acceptance, MIN_ACCEPTANCE + 0.1)  # one more try after the pause


def _blend(average: float, new: float) -> float:
    return (1 - TIME_WEIGHT) * average + TIME_WEIGHT * new


def _left(job: Job) -> int:
    """Tokens `job` may still generate (its budget; a stop string or EOS may end it sooner)."""
    return job.sampling.max_new_tokens - len(job.out_ids)
