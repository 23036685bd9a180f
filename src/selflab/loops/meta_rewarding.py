"""Meta-Rewarding Language Models (Wu et al., 2024): self-rewarding that also trains the judge.

Self-Rewarding improves the actor but not the judge, so its reward saturates. Meta-Rewarding lets
the model, as a meta-judge, compare two of its own judgments of the same response; the preferred
judgment against the rejected one becomes a DPO pair for the *judging* skill, trained together
with the actor pairs.

Per iteration (after self-rewarding's prompts -> generate -> judge, the judge writing its
reasoning before the score, as in the paper):
  meta_judge  for each response, EVERY pair of its parsable judgments goes to the MetaJudge (same
              model, both orders; inconsistent orders are a tie) with the scores STRIPPED, so it
              compares reasoning, not which number was emitted. Parse failures, responses with
              fewer than two parsable judgments or no reasoning to compare are dropped and COUNTED.
  build       actor pairs (best vs worst; optional length control as in the paper: the chosen
              response is the SHORTEST among those scoring within `length_control` of the top)
              plus judge pairs: per response, the judgment with the best win rate over its
              comparisons vs the one with the worst (prompt = the rubric prompt; full texts)
  train       one DPO run on both kinds of pairs (LoRA; reference = previous iterate)
  evaluate    the shared truth meter; judge-benchmark accuracy is the key objective of the judge side
"""

from __future__ import annotations

import random

from pydantic import Field

from selflab.loops.base import StageContext, register_loop
from selflab.loops.evaluation import evaluate_standard
from selflab.loops.judging import JudgedAnswer, MetaRecord, judge_pairs
from selflab.loops.self_rewarding import SelfRewardingConfig, SelfRewardingLoop, self_reward_pairs
from selflab.training import (
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


@register_loop
class MetaRewardingLoop(SelfRewardingLoop):
    name = "meta-rewarding"
    description = "Meta-Rewarding LM: self-rewarding plus DPO on meta-judged pairs of its own judgments"
    Config = MetaRewardingConfig
    stages = ("prompts", "generate", "judge", "meta_judge", "build", "train", "evaluate")
    config: MetaRewardingConfig

    def stage_meta_judge(self, ctx: StageContext) -> None:
        c = self.config
        judged = self.read(ctx.iteration, "judge", JudgedAnswer)
        if not c.train_judge:
            ctx.info["skipped"] = "train_judge is off"
            return
        if c.meta_items < len(judged):
            rng = random.Random(self.seed_for("meta-pick", ctx.iteration))
            judged = [judged[i] for i in sorted(rng.sample(range(len(judged)), c.meta_items))]
        model = self.load(self.policy_spec(ctx.iteration))
        records, counts = self.meta_judge(model, judged, c.meta_max_new_tokens, c.meta_reasoning)
        ctx.out.extend(records)
        ctx.info.update(counts)
        ctx.info["meta_judged"] = len(records)
        decided = [r for r in records if r.verdict in ("A", "B") and r.score_a != r.score_b]
        higher = sum(1 for r in decided if (r.verdict == "A") == ((r.score_a or 0) > (r.score_b or 0)))
        ctx.info["meta_prefers_higher_score"] = higher
        ctx.info["meta_prefers_lower_score"] = len(decided) - higher

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        judged = self.read(ctx.iteration, "judge", JudgedAnswer)
        actor, counts, truncated = self_reward_pairs(
            judged, c.min_margin, c.drop_truncated, source="actor", length_control=c.length_control
        )
        jpairs, jcounts = (
            judge_pairs(self.read(ctx.iteration, "meta_judge", MetaRecord)) if c.train_judge else ([], {})
        )
        pairs = actor + jpairs
        random.Random(self.seed_for("build", ctx.iteration)).shuffle(pairs)
        ctx.out.extend(pairs)
        ctx.info.update(counts.model_dump())
        ctx.info.update(jcounts)
        ctx.info["actor_pairs"] = len(actor)
        ctx.info["dropped_truncated_answers"] = truncated
        if pairs:
            save_parquet(dpo_rows(pairs), ctx.data_path("dpo"))

    def stage_evaluate(self, ctx: StageContext) -> None:
        spec = self.model_after(ctx.iteration)
        ms = evaluate_standard(self, ctx, self.config, self_reward_optimised=True)
        info = self.stage_infos(
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
                "no_reasoning_to_compare",
                "steps",
                "train_loss",
            ),
        )
        self.meter.record(ctx.iteration, spec, ms, info=info, gap=("self_reward", "heldout_pass_rate"))
