"""Step-level training data from code labels: pairs share the correct prefix and diverge at the
first error; the chosen side prefers a correct rollout over the code's continuation; judge pairs
are balanced; KTO examples end at the diverging step."""

from __future__ import annotations

import random

from selflab.stepwise import get_family, step_problems
from selflab.stepwise.pairs import Rollout, Sample, first_new_step, judge_pairs, kto_examples, step_pairs


def _erroneous(family: str, n: int = 4) -> list[Sample]:
    fam = get_family(family)
    rng = random.Random(0)
    out = []
    for i, p in enumerate(step_problems(family, n, seed=0, split="train")):
        got = fam.injected(p, min(1, len(p.gold_steps) - 1), rng)
        assert got is not None
        out.append(Sample(problem=p, sample=i, text=got[0], labelled=fam.label(p, got[0])))
    return out


def test_pairs_diverge_at_the_first_error_and_prefer_rollouts() -> None:
    samples = _erroneous("detective")
    fam = get_family("detective")
    # a correct rollout for the first sample: the gold continuation from its first error
    s0 = samples[0]
    at = s0.labelled.first_error  # type: ignore[union-attr]
    gold_rest = "\n".join([*s0.problem.gold_steps[at:], f"Answer: {s0.problem.answer}"])
    prefix = "".join(x + "\n" for x in s0.problem.gold_steps[:at])
    roll = Rollout(
        problem_id=s0.problem.id, sample=s0.sample, at=at, k=0, continuation=gold_rest,
        labelled=fam.label(s0.problem, prefix + gold_rest),
    )  # fmt: skip
    pairs, counts = step_pairs(samples, [roll])
    assert counts["from_rollout_correct"] == 1 and counts["from_code"] == len(samples) - 1
    for p, s in zip(pairs, samples, strict=True):
        k = s.labelled.first_error  # type: ignore[union-attr]
        shared = "".join(x.text + "\n" for x in s.labelled.steps[:k])  # type: ignore[union-attr]
        assert p.chosen.startswith(shared) and p.rejected.startswith(shared)
        assert p.chosen.split("\n")[k] != p.rejected.split("\n")[k]
        assert fam.label(s.problem, p.chosen).first_error == -1
    assert step_pairs(samples, [], code_fallback=False)[1]["no_chosen"] == len(samples)


def test_judge_pairs_balanced_and_kto_ends_at_the_diverging_step() -> None:
    samples = _erroneous("dates", 6)
    jp = judge_pairs(samples, 6, random.Random(1))
    assert sum(p.chosen.endswith(" correct") for p in jp) == 3 and len(jp) == 6
    assert judge_pairs(samples, 6, random.Random(1)) == jp
    pairs, _ = step_pairs(samples, [])
    kto = kto_examples(pairs)
    assert len(kto) == 2 * len(pairs) and [k.label for k in kto[:2]] == [True, False]
    assert first_new_step("a\nb\nc", "a\nx\ny", True) == "a\nb"
    assert first_new_step("a\nb\nc", "a\nx\ny", False) == "a\nx"
