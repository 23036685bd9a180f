"""Step-level training data from code labels: preference pairs that diverge at the first error,
step-judge verdict pairs, and KTO single-step examples.

Why here and not in the loop: the data rules (which continuation is chosen, how the judge pairs
are balanced, where a KTO step ends) are step-wise logic any trainer can reuse; the loop
`stepwise` only schedules stages and records.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import BaseModel

from selflab.models.types import user
from selflab.stepwise import get_family
from selflab.stepwise.judges import VERDICT_PREFIX, step_prompt
from selflab.stepwise.splitter import join_steps
from selflab.stepwise.types import LabelledSolution, StepProblem
from selflab.training import KTOExample, PreferencePair


class Sample(BaseModel):
    """One sampled solution to a problem, with its code labels once labelled."""

    problem: StepProblem
    sample: int
    text: str
    tokens: int = 0
    labelled: LabelledSolution | None = None


class Rollout(BaseModel):
    """A continuation the model wrote from a sample's correct steps before its first error."""

    problem_id: str
    sample: int
    at: int  # first error of the original solution: the continuation starts here
    k: int
    continuation: str
    labelled: LabelledSolution


def prefix_text(steps: Sequence[str]) -> str:
    """Steps as the assistant text they continue from (one per line, newline-terminated)."""
    return "".join(s + "\n" for s in steps)


def continuation(lab: LabelledSolution, at: int) -> str:
    """A labelled solution's text from step `at` on (with its answer line)."""
    return join_steps([s.text for s in lab.steps[at:]], lab.answer_text)


def step_pairs(
    erroneous: Sequence[Sample], rollouts: Sequence[Rollout], code_fallback: bool = True
) -> tuple[list[PreferencePair], dict[str, int]]:
    """One pair per erroneous sample: the shared correct prefix, then a correct continuation
    (chosen: a fully correct rollout, else one whose first-error step is right, else the code's
    continuation when `code_fallback`) against the sample's own continuation from its first error
    (rejected). Counts say where each chosen side came from and how many had none."""
    by_sample: dict[tuple[str, int], list[Rollout]] = {}
    for r in rollouts:
        by_sample.setdefault((r.problem_id, r.sample), []).append(r)
    counts = {"from_rollout_correct": 0, "from_rollout_step": 0, "from_code": 0, "no_chosen": 0}
    pairs, seen = [], set()
    for s in erroneous:
        lab = s.labelled
        if lab is None or lab.first_error < 0:
            continue
        at, fam = lab.first_error, get_family(s.problem.family)
        prefix_steps = [x.text for x in lab.steps[:at]]
        prefix = prefix_text(prefix_steps)
        rs = by_sample.get((s.problem.id, s.sample), [])
        full = [r for r in rs if r.labelled.first_error == -1 and r.labelled.answer_ok]
        step_ok = [r for r in rs if r.labelled.first_error > at]
        if full:
            chosen, source = continuation(full[0].labelled, at), "rollout_correct"
        elif step_ok:
            chosen, source = continuation(step_ok[0].labelled, at), "rollout_step"
        elif code_fallback and (made := fam.continue_from(s.problem, prefix_steps)) is not None:
            chosen, source = join_steps(made[0], made[1]), "code"
        else:
            counts["no_chosen"] += 1
            continue
        rejected = continuation(lab, at)
        key = (s.problem.id, chosen, rejected)
        if chosen.strip() == rejected.strip() or key in seen:
            continue
        seen.add(key)
        counts[f"from_{source}"] += 1
        pairs.append(
            PreferencePair(
                prompt=list(fam.messages(s.problem)),
                chosen=prefix + chosen,
                rejected=prefix + rejected,
                source=f"step-{source}",
                id=f"{s.problem.id}#{s.sample}@{at}",
            )
        )
    return pairs, counts


def judge_pairs(samples: Sequence[Sample], n: int, rng: random.Random) -> list[PreferencePair]:
    """Up to `n` step-verdict pairs ("Verdict: correct" vs "incorrect" from the code label), half
    on correct steps and half on wrong ones where there are enough; steps up to each sample's
    first error, unparsable steps skipped."""
    good: list[PreferencePair] = []
    bad: list[PreferencePair] = []
    for s in samples:
        lab = s.labelled
        if not lab:
            continue
        steps = [x.text for x in lab.steps]
        fam = get_family(s.problem.family)
        for x in lab.steps[: lab.first_error + 1 if lab.first_error >= 0 else len(lab.steps)]:
            if x.ok is None:
                continue
            prompt = [user(step_prompt(fam, s.problem, steps, x.index))]
            yes, no = f"{VERDICT_PREFIX} correct", f"{VERDICT_PREFIX} incorrect"
            pair = PreferencePair(
                prompt=prompt,
                chosen=yes if x.ok else no,
                rejected=no if x.ok else yes,
                source="judge-step",
                id=f"{s.problem.id}#{s.sample}:judge{x.index}",
            )
            (good if x.ok else bad).append(pair)
    rng.shuffle(good)
    rng.shuffle(bad)
    half = n // 2
    return good[:half] + bad[: n - min(half, len(good))]


def first_new_step(chosen: str, rejected: str, take_chosen: bool) -> str:
    """The shared prefix plus the first line where chosen and rejected differ (one labelled step)."""
    a, b = chosen.split("\n"), rejected.split("\n")
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    lines = a if take_chosen else b
    return "\n".join(lines[: i + 1])


def kto_examples(pairs: Sequence[PreferencePair]) -> list[KTOExample]:
    """KTO's single labelled steps: each pair's diverging step, desirable on the chosen side."""
    out: list[KTOExample] = []
    for p in pairs:
        for side, ok in (("c", True), ("r", False)):
            out.append(
                KTOExample(
                    prompt=p.prompt,
                    response=first_new_step(p.chosen, p.rejected, ok),
                    label=ok,
                    id=f"{p.id}:{side}",
                )
            )
    return out
