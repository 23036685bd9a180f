"""Self-Rewarding Language Models (Yuan et al., 2024): the model writes its own training signal.

Per iteration:
  prompts   the training prompts: seed instructions (training topics of `selflab.tasks`), plus,
            optionally, new instructions the model writes itself from few-shot examples of the seed
            set (Self-Instruct style; parsed defensively, deduplicated, failures counted)
  generate  N sampled responses per prompt from the current model (one batched call, seeded)
  judge     the same model grades every response with the additive 5-point rubric, k judgments
            per response averaged; each judgment is kept, an unparsable one is never a score
  build     highest- vs lowest-scored response per prompt -> DPO pairs; ties, prompts with fewer
            than two parsable scores and identical texts are dropped and COUNTED
  train     DPO (TRL; LoRA by default, so the reference model is the adapter-off base = the
            previous iterate) -> checkpoints/iter-<i> (merged safetensors)
  evaluate  the shared held-out panel (`evaluation.standard_evaluation`): greedy answers to
            held-out instruction tasks (held-out topics) and arithmetic checked by code, the model
            as a judge on held-out judge-benchmark items of known correctness, self-reward (marked
            optimised: the loop trains on it), self-judge/verifier agreement, length, and the
            self-reward minus verifier gap; bootstrap CIs, paired tests by item id.

Defaults follow the paper: the judge writes its reasoning before the score, and new prompts are
self-generated. `configs/self-rewarding.yaml` turns both down for the 135M embedded model (its
reasoning rarely ends in a parsable score, and its own instructions are mostly unusable), and
says so.
"""

from __future__ import annotations

import random
import re
import statistics
from collections.abc import Sequence

from pydantic import BaseModel, Field

from selflab.loops.base import Loop, StageContext, register_loop
from selflab.loops.evaluation import EvalConfig, evaluate_standard
from selflab.loops.judging import JudgedAnswer
from selflab.loops.measures import Answer, sample_answers_on
from selflab.models.types import GenerationRequest, SamplingParams, user
from selflab.tasks import Task
from selflab.tasks.instructions import topic_pool
from selflab.tasks.splits import entity_heldout, split_tasks
from selflab.training import (
    PairCounts,
    PreferencePair,
    ScoredResponse,
    TrainConfig,
    best_vs_worst_pairs,
    dpo_rows,
    save_parquet,
)

# -- configs ---------------------------------------------------------------------------------------


JudgedLoopConfig = EvalConfig  # the settings every self-judging loop shares


class SelfRewardingConfig(JudgedLoopConfig):
    """Defaults: a small budget that finishes on a 2-core CPU in minutes per iteration."""

    judge_reasoning: bool = Field(True, description="the judge explains before its score (the paper)")
    judge_max_new_tokens: int = Field(128, ge=1, description="room for the reasoning and the score")
    seed_prompts: int = Field(16, ge=1, description="seed instructions per iteration (training topics)")
    new_prompts: int = Field(16, ge=0, description="self-generated new instructions per iteration (0: off)")
    new_prompt_attempts: float = Field(2.0, ge=1.0, description="requests per wanted new prompt")
    few_shot: int = Field(4, ge=1, description="seed examples shown when writing a new instruction")
    prompt_max_new_tokens: int = Field(40, ge=8)
    samples_per_prompt: int = Field(4, ge=2)
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(64, ge=8)
    min_margin: float = Field(0.0, ge=0.0, description="best - worst score must exceed this (else a tie)")
    drop_truncated: bool = Field(False, description="leave answers cut off by max_new_tokens out of pairs")
    length_control: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="rho (Meta-Rewarding's length control): chosen = shortest response scoring "
        ">= top - rho*(top - bottom); 0 = plain best vs worst",
    )
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lora=True, learning_rate=5e-5, epochs=1, batch_size=4)
    )


# -- records ---------------------------------------------------------------------------------------


class PromptRecord(BaseModel):
    """One training prompt of one iteration; `source` is "seed" or "self" (model-written)."""

    id: str
    prompt: str
    source: str = "seed"
    raw: str = ""


class PromptRejection(BaseModel):
    """A model-written instruction that was not kept, and why (counted, never silently lost)."""

    raw: str
    reason: str


# -- new instructions (Self-Instruct style) --------------------------------------------------------

_PREFIX = re.compile(
    r"^\s*(?:(?:new\s+)?(?:task|instruction|prompt)\s*\d*\s*[:.)-]|\d+\s*[.):-]|[-*•])\s*", re.I
)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]+", "", text.lower()).strip()


def parse_instruction(raw: str) -> tuple[str | None, str | None]:
    """The first usable line of a model-written instruction, or (None, reason). Strips list
    markers, "Task 5:" prefixes and quotes; refuses empty, too short (< 3 words) or too long
    (> 60 words) text and text that still holds template markup."""
    for line in raw.replace("\r", "\n").split("\n"):
        text = _PREFIX.sub("", line).strip().strip("\"'`“”").strip()
        if not text:
            continue
        words = text.split()
        if len(words) < 3:
            return None, "too short"
        if len(words) > 60:
            return None, "too long"
        if any(m in text for m in ("<|", "|>", "{{", "}}", "<task", "</")):
            return None, "template markup"
        if not re.search(r"[A-Za-z]{3}", text):
            return None, "no words"
        return text, None
    return None, "empty"


def instruction_requests(
    seed_prompts: Sequence[str], n: int, few_shot: int, sampling: SamplingParams, seed: int
) -> list[GenerationRequest]:
    """`n` requests, each showing `few_shot` seed instructions (sampled per request, seeded) and
    asking for one more; request i gets sampling seed `seed + i`."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        shots = rng.sample(list(seed_prompts), min(few_shot, len(seed_prompts)))
        listing = "\n".join(f"Task {j + 1}: {s}" for j, s in enumerate(shots))
        text = (
            "Here are some tasks a user gave to an AI assistant:\n"
            f"{listing}\n\n"
            "Write one new task of the same kind, on a different subject. Reply with the task only."
        )
        s = sampling if sampling.greedy else sampling.model_copy(update={"seed": seed + i})
        out.append(
            GenerationRequest(messages=(user(text),), sampling=s, assistant_prefix=f"Task {len(shots) + 1}:")
        )
    return out


def names_topic(text: str, topics: Sequence[str]) -> bool:
    """Does `text` mention one of `topics` (a word starting with one of a topic's stems)?"""
    from selflab.loops.generated_instructions import _stems

    words = _norm(text).split()
    return any(w.startswith(s) for t in topics for s in _stems(t) for w in words)


def select_instructions(
    raws: Sequence[str], existing: Sequence[str], wanted: int, banned_topics: Sequence[str] = ()
) -> tuple[list[tuple[str, str]], list[PromptRejection]]:
    """Parse, deduplicate (against `existing` and each other, case and punctuation folded) and
    keep the first `wanted`; an instruction naming a `banned_topics` topic (the held-out ones) is
    a leak into training and refused. Returns ((instruction, raw) kept, rejections with reasons)."""
    seen = {_norm(p) for p in existing}
    kept: list[tuple[str, str]] = []
    rejected: list[PromptRejection] = []
    for raw in raws:
        text, err = parse_instruction(raw)
        if text is None:
            rejected.append(PromptRejection(raw=raw[:300], reason=err or "unparsable"))
            continue
        key = _norm(text)
        if key in seen:
            rejected.append(PromptRejection(raw=raw[:300], reason="duplicate"))
            continue
        if names_topic(text, banned_topics):
            rejected.append(PromptRejection(raw=raw[:300], reason="names a held-out topic"))
            continue
        if len(kept) >= wanted:
            rejected.append(PromptRejection(raw=raw[:300], reason="surplus"))
            continue
        seen.add(key)
        kept.append((text, raw))
    return kept, rejected


def group_by_task(answers: Sequence[Answer]) -> dict[str, list[Answer]]:
    groups: dict[str, list[Answer]] = {}
    for a in answers:
        groups.setdefault(a.task_id, []).append(a)
    return groups


def self_reward_pairs(
    answers: Sequence[Answer],
    min_margin: float = 0.0,
    drop_truncated: bool = False,
    source: str = "self-reward",
    length_control: float = 0.0,
) -> tuple[list[PreferencePair], PairCounts, int]:
    """Self-Rewarding's pair rule on self-scored answers grouped by prompt: highest vs lowest mean
    score; unparsable, ties and duplicate texts dropped and counted (`best_vs_worst_pairs`).
    With `length_control` = rho > 0 the chosen side is the shortest (in words) response scoring at
    least top - rho * (top - bottom) (and still more than `min_margin` above the rejected one,
    with another text): Meta-Rewarding's guard against the verbosity drift a self-judge rewards.
    Returns (pairs, counts, truncated answers left out)."""
    counts = PairCounts()
    pairs: list[PreferencePair] = []
    truncated = 0
    for task_id, group in group_by_task(answers).items():
        kept = group
        if drop_truncated:
            kept = [a for a in group if a.finish_reason != "length"]
            truncated += len(group) - len(kept)
        responses = [
            ScoredResponse(response=a.response, score=None if a.error else a.self_score) for a in kept
        ]
        p = best_vs_worst_pairs(
            [user(group[0].prompt)], responses, counts, min_margin=min_margin, source=source, pair_id=task_id
        )
        if p is None:
            continue
        if length_control > 0:
            assert p.chosen_score is not None and p.rejected_score is not None
            floor = p.chosen_score - length_control * (p.chosen_score - p.rejected_score)
            # the shorter chosen must still be a valid pair: not the rejected text (a sampled judge
            # can score one text twice, differently) and not a tie within `min_margin`
            band = [
                r
                for r in responses
                if r.score is not None
                and r.score >= floor
                and r.score - p.rejected_score > min_margin
                and r.response.strip() != p.rejected.strip()
            ]
            short = min(band, key=lambda r: len(r.response.split()))  # first among equals
            p = p.model_copy(update={"chosen": short.response, "chosen_score": short.score})
        pairs.append(p)
    return pairs, counts, truncated


def mean_or_none(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return round(statistics.fmean(vals), 4) if vals else None


# -- the loop --------------------------------------------------------------------------------------


@register_loop
class SelfRewardingLoop(Loop):
    name = "self-rewarding"
    description = "Self-Rewarding LM: own rubric judge scores N samples, best vs worst -> DPO; truth meter"
    Config = SelfRewardingConfig
    baseline_stages = ("evaluate",)
    stages = ("prompts", "generate", "judge", "build", "train", "evaluate")
    config: SelfRewardingConfig

    def seed_tasks(self, iteration: int) -> list[Task]:
        c = self.config
        return split_tasks(
            "instructions",
            c.seed_prompts,
            self.seed_for("train", iteration),
            False,
            c.heldout_topic_fraction,
            topics=c.topics,
        )

    def stage_prompts(self, ctx: StageContext) -> None:
        c = self.config
        seeds = self.seed_tasks(ctx.iteration)
        records = [PromptRecord(id=t.id, prompt=t.prompt, source="seed") for t in seeds]
        if c.new_prompts:
            model = self.load(self.policy_spec(ctx.iteration))
            sampling = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=c.prompt_max_new_tokens)
            n = int(round(c.new_prompts * c.new_prompt_attempts))
            reqs = instruction_requests(
                [t.prompt for t in seeds],
                n,
                c.few_shot,
                sampling,
                self.seed_for("new-prompts", ctx.iteration),
            )
            outs = model.generate(reqs)
            raws = ["" if o.error else o.text for o in outs]
            held = [t for t in topic_pool(c.topics) if entity_heldout(t, c.heldout_topic_fraction)]
            kept, rejected = select_instructions(raws, [t.prompt for t in seeds], c.new_prompts, held)
            records += [
                PromptRecord(id=f"self-{ctx.iteration}-{j}", prompt=p, source="self", raw=raw[:300])
                for j, (p, raw) in enumerate(kept)
            ]
            # rejections go to the same log (resume-safe), marked so they are never used as prompts
            records += [
                PromptRecord(
                    id=f"rejected-{ctx.iteration}-{j}", prompt="", source=f"rejected:{r.reason}", raw=r.raw
                )
                for j, r in enumerate(rejected)
            ]
            reasons: dict[str, int] = {}
            for r in rejected:
                reasons[r.reason] = reasons.get(r.reason, 0) + 1
            ctx.info.update(
                new_prompt_requests=n,
                new_prompts=len(kept),
                **{f"rejected_{k.replace(' ', '_')}": v for k, v in reasons.items()},
            )
        ctx.out.extend(records)
        ctx.info["prompts"] = sum(1 for r in records if r.source in ("seed", "self"))

    def _prompt_tasks(self, iteration: int) -> list[Task]:
        """Prompt records as tasks (self-written ones have no verifier and are never verified)."""
        recs = [r for r in self.read(iteration, "prompts", PromptRecord) if r.source in ("seed", "self")]
        return [
            Task(
                id=r.id,
                kind="instruction",
                prompt=r.prompt,
                reference="",
                verifier="none",
                meta={"source": r.source},
            )
            for r in recs
        ]

    def stage_generate(self, ctx: StageContext) -> None:
        c = self.config
        sampling = SamplingParams(temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens)
        answers = sample_answers_on(  # in process by default; on Ray workers with `executor: ray`
            self.executor,
            self.policy_spec(ctx.iteration),
            self._prompt_tasks(ctx.iteration),
            c.samples_per_prompt,
            sampling,
            self.seed_for("gen", ctx.iteration),
            load=self.load,
        )
        ctx.out.extend(answers)
        ctx.info.update(
            answers=len(answers),
            tokens=sum(a.completion_tokens for a in answers),
            truncated=sum(1 for a in answers if a.finish_reason == "length"),
            errors=sum(1 for a in answers if a.error),
        )

    def stage_judge(self, ctx: StageContext) -> None:
        c = self.config
        answers = self.read(ctx.iteration, "generate", Answer)
        model = self.load(self.policy_spec(ctx.iteration))
        judged = self.self_judge(
            model,
            answers,
            c.judge_samples,
            self.seed_for("judge", ctx.iteration),
            max_new_tokens=c.judge_max_new_tokens,
            template=c.judge_template,
            fence=c.judge_fence,
            temperature=c.judge_temperature,
            reasoning=c.judge_reasoning,
        )
        ctx.out.extend(judged)
        n_j = sum(len(a.scores) for a in judged)
        bad_j = sum(1 for a in judged for s in a.scores if s is None)
        ctx.info.update(
            judgments=n_j,
            unparsable_judgments=bad_j,
            unparsable_answers=sum(1 for a in judged if a.self_score is None),
            mean_self_reward=mean_or_none([a.self_score for a in judged]),
        )

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        judged = self.read(ctx.iteration, "judge", JudgedAnswer)
        pairs, counts, truncated = self_reward_pairs(
            judged, c.min_margin, c.drop_truncated, length_control=c.length_control
        )
        rng = random.Random(self.seed_for("build", ctx.iteration))
        rng.shuffle(pairs)
        ctx.out.extend(pairs)
        ctx.info.update(counts.model_dump())
        ctx.info["dropped_truncated_answers"] = truncated
        if pairs:
            save_parquet(dpo_rows(pairs), ctx.data_path("dpo"))

    def stage_train(self, ctx: StageContext) -> None:
        self.train_or_carry(ctx, "dpo", ctx.data_path("dpo"), self.config.train)

    def stage_evaluate(self, ctx: StageContext) -> None:
        spec = self.model_after(ctx.iteration)
        # the self-reward is this loop's training signal, so it is marked optimised (not evidence)
        ms = evaluate_standard(self, ctx, self.config, self_reward_optimised=True)
        info = self.stage_infos(
            ctx.iteration,
            (
                "prompts",
                "new_prompts",
                "mean_self_reward",
                "unparsable_judgments",
                "pairs",
                "dropped_ties",
                "unparsable_responses",
                "dropped_too_few_scored",
                "steps",
                "train_loss",
            ),
        )
        self.meter.record(ctx.iteration, spec, ms, info=info, gap=("self_reward", "heldout_pass_rate"))
