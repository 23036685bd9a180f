"""Verified self-training (the main job): the model learns from its own answers that a code
verifier accepts (rejection-sampling fine-tuning / filtered behaviour cloning, as in STaR/RFT and
the Deal-or-No-Deal self-play paper's filtered BC), on IFEval-style instructions.

Per iteration:
  generate  N sampled answers per training task from the current model (one batched call, seeded)
  verify    the task's code verifier marks each answer pass/fail
  judge     the model self-judges every answer with the additive rubric (the self-reward; recorded,
            and used only to order verified answers, never to admit a failed one)
  build     SFT: verified answers (deduplicated, at most `keep_per_task` per task);
            DPO: verified vs failed answer of the same task; KTO: verified good, failed bad
  train     TRL SFT/DPO/KTO (LoRA or full fine-tuning) -> checkpoints/iter-<i> (merged safetensors)
  evaluate  greedy answers on HELD-OUT tasks (topics never trained on): verifier pass rate, plus
            control tasks of another family (arithmetic), self-reward, self-judge/verifier
            agreement, length, and the self-reward minus objective gap, all with bootstrap CIs and
            paired tests against iteration 0.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field, model_validator

from selflab.judges.fence import FenceMode
from selflab.loops.base import Loop, LoopConfig, StageContext, register_loop
from selflab.loops.evaluation import Evaluation, Length, SelfJudged, verified_panel
from selflab.loops.measures import Answer, sample_answers_on, verified_examples, verify_answers
from selflab.models.types import SamplingParams, user
from selflab.tasks import Task
from selflab.tasks.splits import FamilyName, TopicPool, split_tasks
from selflab.training import (
    KTOExample,
    PreferencePair,
    ScoredResponse,
    TrainConfig,
    build_pairs,
    dpo_rows,
    kto_rows,
    save_parquet,
    sft_rows,
)

TaskFamily = FamilyName


class VerifiedSFTConfig(LoopConfig):
    """Defaults are the measured main job: 2 iterations on the embedded model in < 20 min on 2 CPU cores."""

    task_family: TaskFamily = "instructions"
    constraint_kinds: list[str] | None = Field(
        None, description="instruction constraint kinds to use (None: all the task module offers)"
    )
    train_tasks: int = Field(64, ge=1, description="fresh training tasks per iteration (training topics)")
    eval_tasks: int = Field(100, ge=2, description="fixed held-out tasks (held-out topics)")
    control_family: TaskFamily | None = Field("arithmetic", description="untrained family, for regressions")
    control_tasks: int = Field(30, ge=0)
    heldout_topic_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    topics: TopicPool = Field(
        "v1",
        description="instruction topic pool: v1 = the 8 topics the published main-job result was "
        "measured on (3 held out); all = 40 topics (about 12 held out)",
    )
    samples_per_task: int = Field(4, ge=1)
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(96, ge=8)
    eval_max_new_tokens: int = Field(96, ge=8)
    self_judge: bool = Field(True, description="self-judge answers (the self-reward)")
    judge_train_answers: bool = Field(True, description="also self-judge the training samples")
    judge_samples: int = Field(1, ge=1, description="k judgments averaged per answer")
    judge_max_new_tokens: int = Field(6, ge=1)
    judge_fence: FenceMode = Field("none", description="self-judge injection fence (see loops.judging)")
    objective: Literal["sft", "dpo", "kto"] = "sft"
    keep_per_task: int = Field(2, ge=1, description="SFT: most verified answers kept per task")
    drop_truncated: bool = Field(True, description="never imitate an answer cut off by max_new_tokens")
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lora=True, learning_rate=2e-4, epochs=2, batch_size=8)
    )

    @model_validator(mode="after")
    def _control_is_untrained(self) -> VerifiedSFTConfig:
        """The control family is the untrained one: the trained family's training side (split at
        `heldout_topic_fraction`) overlaps its held-out side at the control's 0.5 split, so the
        control would score items the loop trained on."""
        if self.control_family is not None and self.control_tasks and self.control_family == self.task_family:
            raise ValueError(
                f"control_family {self.control_family!r} is the trained task_family: it would not be "
                "untrained (and shares items with training); set control_family to another family, "
                "or control_family: null"
            )
        return self


@register_loop
class VerifiedSFTLoop(Loop):
    name = "verified-sft"
    description = "self-training on own answers that a code verifier accepts (RFT); held-out truth meter"
    Config = VerifiedSFTConfig
    baseline_stages = ("evaluate",)
    stages = ("generate", "verify", "judge", "build", "train", "evaluate")
    config: VerifiedSFTConfig

    # -- task sets (pure functions of the config: identical on resume) --------------------------
    def train_tasks(self, iteration: int) -> list[Task]:
        c = self.config
        return split_tasks(
            c.task_family,
            c.train_tasks,
            self.seed_for("train", iteration),
            False,
            c.heldout_topic_fraction,
            c.constraint_kinds,
            c.topics,
        )

    def eval_tasks(self) -> list[Task]:
        c = self.config
        return split_tasks(
            c.task_family,
            c.eval_tasks,
            self.seed_for("eval"),
            True,
            c.heldout_topic_fraction,
            c.constraint_kinds,
            c.topics,
        )

    def control_tasks(self) -> list[Task]:
        c = self.config
        if c.control_family is None or c.control_tasks == 0:
            return []
        return split_tasks(c.control_family, c.control_tasks, self.seed_for("control"), True, 0.5)

    # -- stages -------------------------------------------------------------------------------
    def stage_generate(self, ctx: StageContext) -> None:
        c = self.config
        sampling = SamplingParams(temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens)
        answers = sample_answers_on(  # in process by default; on Ray workers with `executor: ray`
            self.executor,
            self.policy_spec(ctx.iteration),
            self.train_tasks(ctx.iteration),
            c.samples_per_task,
            sampling,
            self.seed_for("gen", ctx.iteration),
            load=self.load,
        )
        ctx.out.extend(answers)
        ctx.info.update(answers=len(answers), tokens=sum(a.completion_tokens for a in answers))

    def stage_verify(self, ctx: StageContext) -> None:
        answers = verify_answers(
            self.train_tasks(ctx.iteration), self.read(ctx.iteration, "generate", Answer)
        )
        ctx.out.extend(answers)
        ok = sum(1 for a in answers if a.verified)
        tasks_ok = len({a.task_id for a in answers if a.verified})
        ctx.info.update(verified=ok, answers=len(answers), tasks_with_a_verified_answer=tasks_ok)
        ctx.info["train_pass_rate"] = round(ok / max(1, len(answers)), 4)

    def stage_judge(self, ctx: StageContext) -> None:
        c = self.config
        answers = self.read(ctx.iteration, "verify", Answer)
        if c.self_judge and c.judge_train_answers and answers:
            model = self.load(self.policy_spec(ctx.iteration))
            answers = self.self_judge(
                model,
                answers,
                c.judge_samples,
                self.seed_for("judge", ctx.iteration),
                max_new_tokens=c.judge_max_new_tokens,
                fence=c.judge_fence,
            )
        ctx.out.extend(answers)
        scored = [a for a in answers if a.self_score is not None]
        ctx.info["judged"] = len(scored)
        ctx.info["unparsable"] = sum(1 for a in answers if a.judge_error)
        if scored:
            pos = [a.self_score for a in scored if a.verified]
            neg = [a.self_score for a in scored if not a.verified]
            ctx.info["self_reward_verified"] = round(sum(pos) / len(pos), 4) if pos else None  # type: ignore[arg-type]
            ctx.info["self_reward_failed"] = round(sum(neg) / len(neg), 4) if neg else None  # type: ignore[arg-type]

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        answers = self.read(ctx.iteration, "judge", Answer)
        by_task: dict[str, list[Answer]] = {}
        for a in answers:
            by_task.setdefault(a.task_id, []).append(a)
        rng = random.Random(self.seed_for("build", ctx.iteration))
        rows: list[dict] = []
        if c.objective == "sft":
            examples = verified_examples(answers, c.keep_per_task, c.drop_truncated)
            rng.shuffle(examples)
            ctx.out.extend(examples)
            rows = sft_rows(examples)
            ctx.info["examples"] = len(examples)
        else:
            groups = [
                (
                    [user(g[0].prompt)],
                    [ScoredResponse(response=a.response, score=float(bool(a.verified))) for a in g],
                )
                for g in by_task.values()
            ]
            result = build_pairs(groups, source="verified-vs-failed")
            pairs: list[PreferencePair] = result.pairs
            rng.shuffle(pairs)
            ctx.out.extend(pairs)
            ctx.info.update(result.counts.model_dump())
            if c.objective == "dpo":
                rows = dpo_rows(pairs)
            else:
                kto: list[KTOExample] = []
                for p in pairs:
                    kto.append(KTOExample(prompt=p.prompt, response=p.chosen, label=True, id=p.id + ":c"))
                    kto.append(KTOExample(prompt=p.prompt, response=p.rejected, label=False, id=p.id + ":r"))
                rows = kto_rows(kto)
            ctx.info["examples"] = len(rows)
        if rows:
            save_parquet(rows, ctx.data_path(c.objective))

    def stage_train(self, ctx: StageContext) -> None:
        c = self.config
        self.train_or_carry(ctx, c.objective, ctx.data_path(c.objective), c.train)

    def evaluation(self) -> Evaluation:
        """Held-out tasks (held-out topics) and the untrained control family, greedy."""
        c = self.config
        sets, scorers = verified_panel(
            self.eval_tasks(),
            self.control_tasks(),
            f"control_{c.control_family}_accuracy",
            "verifier pass rate, greedy, on held-out topics (training used the same verifier family)",
        )
        if c.self_judge:
            scorers.append(
                SelfJudged("heldout", c.judge_samples, c.judge_max_new_tokens, fence=c.judge_fence)
            )
        scorers.append(Length("heldout"))
        greedy = SamplingParams(temperature=0.0, max_new_tokens=c.eval_max_new_tokens)
        return Evaluation("verified-sft", sets, greedy, scorers)

    def stage_evaluate(self, ctx: StageContext) -> None:
        spec = self.model_after(ctx.iteration)
        result = self.run_evaluation(ctx, self.evaluation(), spec)
        info: dict[str, float | int | str | None] = {}
        if ctx.iteration > 0:
            info.update(
                self.stage_infos(
                    ctx.iteration, ("train_pass_rate", "examples", "pairs", "steps", "train_loss")
                )
            )
            judged = self.stage_infos(
                ctx.iteration, ("self_reward_verified", "self_reward_failed", "unparsable")
            )
            info.update({f"train_{k}": v for k, v in judged.items()})
        ctx.info["heldout_pass"] = sum(1 for a in result.answers["heldout"] if a.verified)
        self.meter.record(
            ctx.iteration, spec, result.measurements, info=info, gap=("self_reward", "heldout_pass_rate")
        )
