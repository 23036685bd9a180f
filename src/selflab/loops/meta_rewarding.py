"""Meta-Rewarding Language Models (Wu et al., 2024): self-rewarding that also trains the judge.

Self-Rewarding improves the actor but not the judge, so its reward saturates. Meta-Rewarding lets
the model, as a meta-judge, compare two of its own judgments of the same response; the preferred
judgment against the rejected one becomes a DPO pair for the *judging* skill, trained together
with the actor pairs.

Per iteration (after self-rewarding's prompts -> generate -> judge):
  meta_judge  for each response whose k judgments disagree (two parsable, different scores), the
              highest- and lowest-scoring judgment go to the MetaJudge (same model, both orders;
              inconsistent orders are a tie). Ties, parse failures, responses with fewer than two
              parsable judgments and with unanimous judgments are dropped and COUNTED.
  build       actor pairs (best vs worst; optional length control as in the paper: the chosen
              response is the SHORTEST among those scoring within `length_control` of the top)
              plus judge pairs (prompt = the rubric prompt, chosen/rejected = judgment texts)
  train       one DPO run on both kinds of pairs (LoRA; reference = previous iterate)
  evaluate    the shared truth meter; judge-benchmark accuracy is the key objective of the judge side
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from pydantic import BaseModel, Field

from selflab.loops.base import StageContext, register_loop
from selflab.loops.self_rewarding import (
    JudgedAnswer,
    SelfRewardingConfig,
    SelfRewardingLoop,
    group_by_task,
    stage_infos,
)
from selflab.models.types import SamplingParams, user
from selflab.training import (
    PairCounts,
    PreferencePair,
    ScoredResponse,
    best_vs_worst_pairs,
    dpo_rows,
    save_parquet,
)


class MetaRewardingConfig(SelfRewardingConfig):
    judge_samples: int = Field(4, ge=2, description="k judgments per response (>= 2 to have pairs)")
    judge_temperature: float = Field(1.0, ge=0.0, description="diverse judgments to compare")
    train_judge: bool = Field(True, description="add meta-judged judgment pairs to the DPO data")
    meta_items: int = Field(48, ge=0, description="most responses whose judgments are meta-judged")
    meta_max_new_tokens: int = Field(4, ge=1)
    meta_reasoning: bool = Field(False, description="let the meta-judge explain first (slow)")
    length_control: float = Field(
        0.0, ge=0.0, lt=1.0, description="rho: chosen = shortest response scoring >= top - rho*(top - bottom)"
    )


class MetaRecord(BaseModel):
    """One meta-judgment: two judgments of one response and which the meta-judge preferred."""

    answer_id: str
    prompt: str  # the actor prompt
    judge_prompt: str  # the rubric prompt both judgments answered
    response: str
    judgment_a: str
    judgment_b: str
    score_a: float
    score_b: float
    verdict: str | None = None  # "A", "B", "tie" or None (unparsable)
    parse_error: str | None = None
    consistent: bool | None = None


def length_controlled_pairs(
    answers: Sequence[JudgedAnswer], rho: float, min_margin: float = 0.0
) -> tuple[list[PreferencePair], PairCounts]:
    """Best-vs-worst actor pairs (same drop rules and counts as self-rewarding), where with rho > 0
    the chosen side is the shortest (in words) of the responses scoring at least
    top - rho * (top - bottom): the paper's length control against verbosity drift."""
    counts = PairCounts()
    pairs = []
    for task_id, group in group_by_task(answers).items():
        scored = [ScoredResponse(response=a.response, score=None if a.error else a.self_score) for a in group]
        p = best_vs_worst_pairs(
            [user(group[0].prompt)], scored, counts, min_margin=min_margin, source="actor", pair_id=task_id
        )
        if p is None:
            continue
        if rho > 0:
            assert p.chosen_score is not None and p.rejected_score is not None
            floor = p.chosen_score - rho * (p.chosen_score - p.rejected_score)
            band = [r for r in scored if r.score is not None and r.score >= floor]
            short = min(band, key=lambda r: len(r.response.split()))  # first among equals
            p = p.model_copy(update={"chosen": short.response, "chosen_score": short.score})
        pairs.append(p)
    return pairs, counts


def meta_candidates(
    answers: Sequence[JudgedAnswer],
) -> tuple[list[tuple[JudgedAnswer, int, int]], dict[str, int]]:
    """For each answer, the (highest, lowest) parsable judgment indexes when their scores differ;
    with counts of answers left out and why."""
    out = []
    counts = {"too_few_parsable_judgments": 0, "unanimous_judgments": 0}
    for a in answers:
        ok = [(i, s) for i, s in enumerate(a.scores) if s is not None]
        if len(ok) < 2:
            counts["too_few_parsable_judgments"] += 1
            continue
        hi = max(ok, key=lambda t: t[1])
        lo = min(ok, key=lambda t: t[1])
        if hi[1] == lo[1]:
            counts["unanimous_judgments"] += 1
            continue
        out.append((a, hi[0], lo[0]))
    return out, counts


def judge_pairs(records: Sequence[MetaRecord]) -> tuple[list[PreferencePair], dict[str, int]]:
    """Meta-judged judgments -> DPO pairs for the judging skill; ties and unparsable counted."""
    pairs = []
    counts = {"meta_judged": len(records), "judge_pairs": 0, "meta_ties": 0, "meta_unparsable": 0}
    for r in records:
        if r.verdict is None:
            counts["meta_unparsable"] += 1
            continue
        if r.verdict == "tie":
            counts["meta_ties"] += 1
            continue
        win, lose = (r.judgment_a, r.judgment_b) if r.verdict == "A" else (r.judgment_b, r.judgment_a)
        ws, ls = (r.score_a, r.score_b) if r.verdict == "A" else (r.score_b, r.score_a)
        pairs.append(
            PreferencePair(
                prompt=[user(r.judge_prompt)],
                chosen=win,
                rejected=lose,
                chosen_score=ws,
                rejected_score=ls,
                source="judge",
                id=r.answer_id,
            )
        )
        counts["judge_pairs"] += 1
    return pairs, counts


@register_loop
class MetaRewardingLoop(SelfRewardingLoop):
    name = "meta-rewarding"
    description = "Meta-Rewarding LM: self-rewarding plus DPO on meta-judged pairs of its own judgments"
    Config = MetaRewardingConfig
    stages = ("prompts", "generate", "judge", "meta_judge", "build", "train", "evaluate")
    config: MetaRewardingConfig

    def stage_meta_judge(self, ctx: StageContext) -> None:
        from selflab.judges.meta import MetaJudge
        from selflab.judges.types import MetaItem

        c = self.config
        judged = self.read(ctx.iteration, "judge", JudgedAnswer)
        cands, counts = meta_candidates(judged)
        ctx.info.update(counts)
        ctx.info["meta_candidates"] = len(cands)
        if c.meta_items < len(cands):
            rng = random.Random(self.seed_for("meta-pick", ctx.iteration))
            keep = sorted(rng.sample(range(len(cands)), c.meta_items))
            cands = [cands[i] for i in keep]
        if not c.train_judge or not cands:
            return
        model = self.load(self.policy_spec(ctx.iteration))
        meta = MetaJudge(
            model,
            sampling=SamplingParams(
                temperature=0.0, max_new_tokens=64 if c.meta_reasoning else c.meta_max_new_tokens
            ),
            both_orders=True,
            on_disagree="tie",
            direct=not c.meta_reasoning,
        )
        items = [
            MetaItem(
                prompt=a.prompt,
                response=a.response,
                judgment_a=a.judgments[hi],
                judgment_b=a.judgments[lo],
                id=f"{a.task_id}#{a.sample}",
            )
            for a, hi, lo in cands
        ]
        verdicts = meta.compare_judgments(items)
        records = [
            MetaRecord(
                answer_id=item.id,
                prompt=a.prompt,
                judge_prompt=a.judge_prompt,
                response=a.response,
                judgment_a=item.judgment_a,
                judgment_b=item.judgment_b,
                score_a=float(a.scores[hi]),  # type: ignore[arg-type]
                score_b=float(a.scores[lo]),  # type: ignore[arg-type]
                verdict=j.verdict,
                parse_error=j.parse_error,
                consistent=j.details.get("consistent"),
            )
            for (a, hi, lo), item, j in zip(cands, items, verdicts, strict=True)
        ]
        ctx.out.extend(records)
        ctx.info["meta_judged"] = len(records)
        ctx.info["meta_prefers_higher_score"] = sum(1 for r in records if r.verdict == "A")
        ctx.info["meta_prefers_lower_score"] = sum(1 for r in records if r.verdict == "B")

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        judged = self.read(ctx.iteration, "judge", JudgedAnswer)
        actor, counts = length_controlled_pairs(judged, c.length_control, c.min_margin)
        jpairs, jcounts = (
            judge_pairs(self.read(ctx.iteration, "meta_judge", MetaRecord)) if c.train_judge else ([], {})
        )
        pairs = actor + jpairs
        random.Random(self.seed_for("build", ctx.iteration)).shuffle(pairs)
        ctx.out.extend(pairs)
        ctx.info.update(counts.model_dump())
        ctx.info.update(jcounts)
        ctx.info["actor_pairs"] = len(actor)
        if pairs:
            save_parquet(dpo_rows(pairs), ctx.data_path("dpo"))

    def stage_evaluate(self, ctx: StageContext) -> None:
        from selflab.loops.self_rewarding import evaluate_policy

        spec = self.model_after(ctx.iteration)
        ms, records = evaluate_policy(self, ctx, self.config, spec)
        ctx.out.extend(records)
        info = stage_infos(
            self,
            ctx.iteration,
            (
                "prompts",
                "mean_self_reward",
                "unparsable_judgments",
                "actor_pairs",
                "judge_pairs",
                "dropped_ties",
                "meta_ties",
                "meta_unparsable",
                "unanimous_judgments",
                "steps",
                "train_loss",
            ),
        )
        self.meter.record(ctx.iteration, spec, ms, info=info, gap=("self_reward", "heldout_pass_rate"))
