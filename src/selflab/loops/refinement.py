"""What one self-refinement is (first attempt, the model's critique, the revision, the verdicts),
the chats that produce it, and the training data built from refinements: revisions in
transcript form (self-correction), revisions alone (SELF) or fixed-over-unchanged preference
pairs, with every drop counted, and the truth meter's measures of a held-out evaluation."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from pydantic import BaseModel, Field

from selflab.loops.truth_meter import Measurement
from selflab.models.types import Message, assistant, user
from selflab.training import PreferencePair, SFTExample

CRITIQUE_PROMPT = (
    "Review your answer above. Check each step and the final result. If there is a mistake, say "
    "which step is wrong and why. Be brief."
)
REVISE_AFTER_CRITIQUE = (
    "Using your review, write the corrected answer to the original question. If your first answer "
    "was right, repeat it. End with the final answer."
)
SCORE_RETRY = (
    "There might be an error in the answer above. Check it carefully and give your final answer "
    "again, ending with the final answer."
)


class Refinement(BaseModel):
    """One task's first attempt, the model's critique of it, the revision, and the verdicts."""

    task_id: str
    prompt: str
    sample: int = 0
    revision: int = 0
    first: str
    first_tokens: int = 0
    first_finish: str = "stop"
    critique: str = ""
    second: str = ""
    second_tokens: int = 0
    second_finish: str = "stop"
    first_ok: bool | None = None
    second_ok: bool | None = None
    first_reason: str = ""
    second_reason: str = ""
    first_score: float | None = None
    second_score: float | None = None
    error: str | None = None

    @property
    def outcome(self) -> str:
        """fixed / broke / kept / stuck by the verifier (unknown if a verdict is missing)."""
        if self.first_ok is None or self.second_ok is None:
            return "unknown"
        return {
            (False, True): "fixed",
            (True, False): "broke",
            (True, True): "kept",
            (False, False): "stuck",
        }[(self.first_ok, self.second_ok)]


# -- prompts -------------------------------------------------------------------------------------


def critique_messages(r: Refinement) -> list[Message]:
    return [user(r.prompt), assistant(r.first), user(CRITIQUE_PROMPT)]


def revise_messages(r: Refinement, mode: str) -> list[Message]:
    """The chat that precedes the second attempt (also the prompt of the SCoRe training data)."""
    if mode in ("retry", "score"):
        return [user(r.prompt), assistant(r.first), user(SCORE_RETRY)]
    return [*critique_messages(r), assistant(r.critique), user(REVISE_AFTER_CRITIQUE)]


# -- data construction ---------------------------------------------------------------------------


class RefineData(BaseModel):
    sft: list[SFTExample] = Field(default_factory=list)
    pairs: list[PreferencePair] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)


def improved(r: Refinement, selector: str) -> str:
    """'better' / 'worse' / 'same' / 'tie' / 'unparsable' for the second attempt vs the first."""
    if selector == "judge":
        if r.first_score is None or r.second_score is None:
            return "unparsable"
        if r.second_score > r.first_score:
            return "better"
        if r.second_score < r.first_score:
            return "worse"
        return "tie"
    o = r.outcome
    return {"fixed": "better", "broke": "worse", "kept": "same", "stuck": "same"}.get(o, "unparsable")


def build_refine_data(
    refs: Sequence[Refinement],
    mode: str,
    selector: str = "verifier",
    data: str = "transcript",
    keep_correct: bool = False,
    max_kept_fraction: float = 0.5,
    drop_truncated: bool = True,
    seed: int = 0,
) -> RefineData:
    """Training data from (first, second) attempts. Rules (each drop is counted):
    - an attempt with a generation error, an empty second attempt, or (with `drop_truncated`) a
      truncated second attempt is dropped;
    - `better` (verifier: wrong -> right; judge: higher self-score) -> SFT (SELF: task -> revision;
      SCoRe: transcript -> revision) and a DPO pair on the transcript: revision over the first
      attempt repeated; a revision identical to the first attempt is no improvement (dropped);
    - `worse` (verifier: right -> wrong) -> a DPO pair: the first attempt repeated over the revision;
    - `same` with both right (verifier) -> with `keep_correct`, a SCoRe transcript that keeps the
      answer, capped at `max_kept_fraction` of the SFT data;
    - ties and unparsable judgments (judge selector) are dropped and counted;
    - with several revisions of one first attempt (RISE's best-of-N self-distillation), at most one
      `better` and one `worse` item per first attempt: the first in revision order.
    """
    c: Counter[str] = Counter()
    sft: list[SFTExample] = []
    kept: list[SFTExample] = []
    pairs: list[PreferencePair] = []
    used: set[tuple[str, str]] = set()  # (first attempt id, verdict) already turned into data
    for r in refs:
        c["refinements"] += 1
        c[f"outcome_{r.outcome}"] += 1
        if r.error:
            c["dropped_generation_error"] += 1
            continue
        if not r.second.strip():
            c["dropped_empty_revision"] += 1
            continue
        if drop_truncated and r.second_finish == "length":
            c["dropped_truncated_revision"] += 1
            continue
        verdict = improved(r, selector)
        c[f"verdict_{verdict}"] += 1
        rid = f"{r.task_id}#{r.sample}"
        transcript = revise_messages(r, mode)
        if verdict in ("better", "worse") and r.second.strip() == r.first.strip():
            c["dropped_identical_revision"] += 1
            continue
        if verdict in ("better", "worse"):
            if (rid, verdict) in used:
                c[f"dropped_extra_{verdict}_revision"] += 1
                continue
            used.add((rid, verdict))
        if verdict == "better":
            if data in ("self", "both"):
                sft.append(
                    SFTExample(prompt=[user(r.prompt)], response=r.second, source="self-refined", id=rid)
                )
            if data in ("transcript", "score", "both"):
                sft.append(
                    SFTExample(prompt=transcript, response=r.second, source="two-attempt", id=rid + ":t")
                )
            pairs.append(
                PreferencePair(
                    prompt=transcript,
                    chosen=r.second,
                    rejected=r.first,
                    chosen_score=r.second_score if selector == "judge" else 1.0,
                    rejected_score=r.first_score if selector == "judge" else 0.0,
                    source="fixed-over-unchanged",
                    id=rid,
                )
            )
        elif verdict == "worse":
            pairs.append(
                PreferencePair(
                    prompt=transcript,
                    chosen=r.first,
                    rejected=r.second,
                    chosen_score=r.first_score if selector == "judge" else 1.0,
                    rejected_score=r.second_score if selector == "judge" else 0.0,
                    source="keep-over-broken",
                    id=rid,
                )
            )
        elif (
            verdict == "same"
            and r.first_ok
            and r.second_ok
            and keep_correct
            and data in ("transcript", "score", "both")
        ):
            kept.append(
                SFTExample(prompt=transcript, response=r.second, source="kept-correct", id=rid + ":k")
            )
    rng = random.Random(seed)
    if kept:
        # right -> right transcripts are plentiful and easy; cap their share so fixes dominate
        cap = (
            len(kept)
            if max_kept_fraction >= 1.0
            else int(max_kept_fraction * len(sft) / (1 - max_kept_fraction))
        )
        rng.shuffle(kept)
        c["dropped_kept_over_cap"] = max(0, len(kept) - cap)
        kept = kept[:cap]
    sft += kept
    rng.shuffle(sft)
    rng.shuffle(pairs)
    c["sft_examples"] = len(sft)
    c["pairs"] = len(pairs)
    return RefineData(sft=sft, pairs=pairs, counts=dict(sorted(c.items())))


# -- measurements --------------------------------------------------------------------------------


def refine_measures(refs: Sequence[Refinement], with_self_reward: bool) -> list[Measurement]:
    """The truth meter's view of a held-out evaluation (items paired by task id across iterations)."""
    ids = [f"{r.task_id}#{r.sample}" for r in refs]
    ms = [
        Measurement(
            name="first_attempt_accuracy",
            kind="objective",
            values=[bool(r.first_ok) for r in refs],
            ids=ids,
            description="verifier accuracy of the first attempt, greedy, held-out tasks",
        ),
        Measurement(
            name="second_attempt_accuracy",
            kind="objective",
            values=[bool(r.second_ok) for r in refs],
            ids=ids,
            description="verifier accuracy after self-critique and revision",
            primary=True,
        ),
        Measurement(
            name="fixed_rate",
            kind="objective",
            values=[r.outcome == "fixed" for r in refs],
            ids=ids,
            description="wrong first attempt made right by the revision (share of all tasks)",
        ),
        Measurement(
            name="broke_rate",
            kind="objective",
            values=[r.outcome == "broke" for r in refs],
            ids=ids,
            higher_is_better=False,
            description="right first attempt made wrong by the revision (share of all tasks)",
        ),
        Measurement(
            name="delta_t1_t2",
            kind="objective",
            values=[float(bool(r.second_ok)) - float(bool(r.first_ok)) for r in refs],
            ids=ids,
            description="per task: second-attempt minus first-attempt correctness (SCoRe's Δ(t1,t2))",
        ),
    ]
    if with_self_reward:
        ms.append(
            Measurement(
                name="self_reward",
                kind="self_reward",
                values=[r.second_score for r in refs],
                ids=ids,
                description="own rubric score of the final (revised) answer, [0, 1]; unparsable = missing",
            )
        )
    ms.append(
        Measurement(
            name="response_tokens",
            kind="drift",
            values=[float(r.second_tokens) for r in refs],
            ids=ids,
            higher_is_better=False,
            description="tokens of the final (revised) answer (length drift)",
        )
    )
    ms.append(
        Measurement(
            name="first_response_tokens",
            kind="drift",
            values=[float(r.first_tokens) for r in refs],
            ids=ids,
            higher_is_better=False,
            description="tokens of the first attempt",
        )
    )
    return ms
