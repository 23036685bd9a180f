"""The model judging itself: one rubric self-judge (each of k judgments kept) and one meta-judge
(Meta-Rewarding's comparison of the model's own judgments). Every loop that judges itself uses
these two through `Loop.self_judge` / `Loop.meta_judge`.

Why the self-judge is unfenced by default (`SELF_JUDGE_FENCE`): the judges' injection fence
(judges/fence.py) guards against untrusted candidates, but with its note after the judged text it
made the embedded 135M rubric judge score every answer 0 (24/24 answers vs 14/24 unfenced;
`benchmarks/judge_fence_effect.py`), so a fenced self-reward carried no signal and yielded no
training pairs, and the loops' published runs were measured unfenced. (With the note before the
question, as now, the fenced judge grades again: 9/24 zeros.) Self-judging grades the model's own
answers, as in the Self-Rewarding and Meta-Rewarding papers; the truth meter, not the fence, is
what catches a policy that learns to inject "Score: 5". Pass `fence="boundary"` (config
key `judge_fence`) to judge fenced."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, Field

from selflab.judges.fence import FenceMode
from selflab.loops.measures import Answer
from selflab.models.types import LanguageModel, SamplingParams, user
from selflab.training import PreferencePair


class JudgedAnswer(Answer):
    """An answer with each of its k judgments kept (raw text and score on the judge's scale);
    `self_score` is their mean over parsable ones, normalised to [0, 1]."""

    judge_prompt: str = ""
    judgments: list[str] = Field(default_factory=list)
    scores: list[float | None] = Field(default_factory=list)
    scale: tuple[float, float] = (0.0, 5.0)


SELF_JUDGE_FENCE: FenceMode = "none"

_ANSWER_FIELDS = set(Answer.model_fields) - {"self_score", "judge_raw", "judge_error"}


def judge_answers(
    model: LanguageModel,
    answers: Sequence[Answer],
    samples: int = 1,
    seed: int = 0,
    max_new_tokens: int = 4,
    template: str = "rubric_additive",
    temperature: float = 0.7,
    reasoning: bool = False,
    fence: FenceMode = SELF_JUDGE_FENCE,
) -> list[JudgedAnswer]:
    """Grade every answer `samples` times with the rubric judge in ONE generate call, keeping each
    judgment. One sample is greedy; several are sampled (seeded per judgment). Without
    `reasoning` the answer is forced to begin with "Score:" (cheap, parseable for a small model);
    with it the judge explains first, as in the Self-Rewarding paper. Unparsable stays None."""
    from selflab.judges.rubric import RubricJudge
    from selflab.judges.types import PointwiseItem

    temp = 0.0 if samples == 1 else temperature
    judge = RubricJudge(
        model,
        template=template,
        sampling=SamplingParams(temperature=temp, max_new_tokens=max_new_tokens),
        samples=samples,
        seed=seed,
        direct=not reasoning,
        fence=fence,
    )
    lo, hi = judge.scale
    items = [
        PointwiseItem(prompt=a.prompt, response=a.response, id=f"{a.task_id}#{a.sample}") for a in answers
    ]
    out = []
    for a, item, j in zip(answers, items, judge.judge(items), strict=True):
        recs = j.details.get("samples") or []
        scores = [None if r.get("value") is None else float(r["value"]) for r in recs]
        mean = None if j.score is None else (float(j.score) - lo) / (hi - lo)
        out.append(
            JudgedAnswer(
                **{k: v for k, v in a.model_dump().items() if k in _ANSWER_FIELDS},
                self_score=mean,
                judge_raw=j.raw[-200:],
                judge_error=j.parse_error,
                judge_prompt=judge.prompt_text(item),
                judgments=[str(r.get("raw", "")) for r in recs],
                scores=scores,
                scale=(lo, hi),
            )
        )
    return out


# -- meta-judging ----------------------------------------------------------------------------------

_SCORE = re.compile(
    r"(?im)^\W*(?:total\s+)?(?:score|rating|points?)\s*[:=]?\s*\**\s*-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?\W*$"
)
_INLINE_SCORE = re.compile(r"(?i)\b(?:score|rating)\s*[:=]\s*-?\d+(?:\.\d+)?(?:\s*/\s*\d+)?")


def strip_score(judgment: str) -> str:
    """The judgment's reasoning without its score, so a meta-judge compares reasoning, not which
    number was emitted (as public Meta-Rewarding implementations do)."""
    text = _SCORE.sub("", judgment)
    text = _INLINE_SCORE.sub("", text)
    return text.strip()


class MetaRecord(BaseModel):
    """One meta-judgment: two (score-stripped) judgments of one response and which one won."""

    answer_id: str
    prompt: str  # the actor prompt
    judge_prompt: str  # the rubric prompt both judgments answered
    response: str
    index_a: int = 0
    index_b: int = 1
    judgment_a: str  # full judgment texts (the DPO targets)
    judgment_b: str
    score_a: float | None = None
    score_b: float | None = None
    verdict: str | None = None  # "A", "B", "tie" or None (unparsable)
    parse_error: str | None = None
    consistent: bool | None = None


def meta_candidates(
    answers: Sequence[JudgedAnswer],
) -> tuple[list[tuple[JudgedAnswer, int, int]], dict[str, int]]:
    """Every pair (i < j) of an answer's parsable judgments whose reasoning (score stripped)
    differs and is not empty: all pairs, as in the paper. Counts answers left out and why."""
    out = []
    counts = {"too_few_parsable_judgments": 0, "no_reasoning_to_compare": 0, "meta_pairs": 0}
    for a in answers:
        ok = [i for i, s in enumerate(a.scores) if s is not None]
        if len(ok) < 2:
            counts["too_few_parsable_judgments"] += 1
            continue
        texts = {i: strip_score(a.judgments[i]) for i in ok}
        pairs = [(i, j) for n, i in enumerate(ok) for j in ok[n + 1 :] if texts[i] and texts[i] != texts[j]]
        if not pairs:
            counts["no_reasoning_to_compare"] += 1
            continue
        out += [(a, i, j) for i, j in pairs]
        counts["meta_pairs"] += len(pairs)
    return out, counts


def run_meta_judge(
    model: LanguageModel,
    cands: Sequence[tuple[JudgedAnswer, int, int]],
    max_new_tokens: int = 4,
    reasoning: bool = False,
    fence: FenceMode = SELF_JUDGE_FENCE,
) -> list[MetaRecord]:
    """The model as MetaJudge (both orders, disagreement = tie) on score-stripped judgment pairs,
    in one generate call."""
    from selflab.judges.meta import MetaJudge
    from selflab.judges.types import MetaItem

    if not cands:
        return []
    meta = MetaJudge(
        model,
        sampling=SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens),
        both_orders=True,
        on_disagree="tie",
        direct=not reasoning,
        fence=fence,
    )
    items = [
        MetaItem(
            prompt=a.prompt,
            response=a.response,
            judgment_a=strip_score(a.judgments[i]),
            judgment_b=strip_score(a.judgments[j]),
            id=f"{a.task_id}#{a.sample}",
        )
        for a, i, j in cands
    ]
    return [
        MetaRecord(
            answer_id=item.id,
            prompt=a.prompt,
            judge_prompt=a.judge_prompt,
            response=a.response,
            index_a=i,
            index_b=j,
            judgment_a=a.judgments[i],
            judgment_b=a.judgments[j],
            score_a=a.scores[i],
            score_b=a.scores[j],
            verdict=v.verdict,
            parse_error=v.parse_error,
            consistent=v.details.get("consistent"),
        )
        for (a, i, j), item, v in zip(cands, items, meta.compare_judgments(items), strict=True)
    ]


def judge_pairs(records: Sequence[MetaRecord]) -> tuple[list[PreferencePair], dict[str, int]]:
    """Meta-judgments -> one DPO pair per judged response for the judging skill: each judgment's
    win score over all its comparisons (win 1, tie 0.5), chosen = the best, rejected = the worst;
    responses whose best and worst tie, and unparsable comparisons, are dropped and counted."""
    counts = {"meta_judged": len(records), "judge_pairs": 0, "meta_ties": 0, "meta_unparsable": 0}
    counts["judge_pair_ties"] = 0
    wins: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    first: dict[str, MetaRecord] = {}
    texts: dict[tuple[str, int], tuple[str, float | None]] = {}
    for r in records:
        if r.verdict is None:
            counts["meta_unparsable"] += 1
            continue
        counts["meta_ties"] += r.verdict == "tie"
        first.setdefault(r.answer_id, r)
        texts[(r.answer_id, r.index_a)] = (r.judgment_a, r.score_a)
        texts[(r.answer_id, r.index_b)] = (r.judgment_b, r.score_b)
        a = 1.0 if r.verdict == "A" else 0.5 if r.verdict == "tie" else 0.0
        wins[r.answer_id][r.index_a].append(a)
        wins[r.answer_id][r.index_b].append(1.0 - a)
    pairs = []
    for aid, per in wins.items():
        rate = {i: sum(v) / len(v) for i, v in per.items()}
        best = max(rate, key=lambda i: (rate[i], -i))
        worst = min(rate, key=lambda i: (rate[i], i))
        if rate[best] == rate[worst]:
            counts["judge_pair_ties"] += 1
            continue
        (win, ws), (lose, ls) = texts[(aid, best)], texts[(aid, worst)]
        pairs.append(
            PreferencePair(
                prompt=[user(first[aid].judge_prompt)],
                chosen=win,
                rejected=lose,
                chosen_score=ws,
                rejected_score=ls,
                source="judge",
                id=aid,
            )
        )
        counts["judge_pairs"] += 1
    return pairs, counts
