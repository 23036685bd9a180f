"""Self-refinement (SELF, Lu et al.) and self-correction data in the two-attempt format of SCoRe
(Kumar et al.): the model answers, critiques its own answer (or is told to retry), and revises it;
revisions that a code verifier (or, optionally, the model's own judge) finds better than the
first attempt become training data.

What this is NOT: SCoRe itself. SCoRe trains with on-policy RL (a KL-anchored first attempt and a
reward bonus alpha*(r2 - r1)); this loop trains with SFT/DPO on filtered self-generated
corrections, i.e. SCoRe's "SFT on self-generated correction traces" baseline, and names its
modes accordingly (`retry`, `transcript`). Its self-correction measure is Delta(t1 -> t2), the
second-attempt minus first-attempt accuracy on held-out tasks (`delta_t1_t2`). By default it
trains on transcripts only (no prompt -> revision examples, which would be first-attempt
rejection sampling, so a first-attempt gain would not be self-correction) and adds no
right -> right transcripts (which SCoRe reports collapse the model into never editing).

Per iteration:
  attempt   one sampled first attempt per training task (one batched, seeded call)
  critique  the model reviews its own attempt (critique template; skipped in `score` mode, where the
            second turn is SCoRe's bare "there may be a mistake, try again" instruction)
  revise    the model writes a second attempt after its critique (one batched call)
            (`revisions_per_attempt` > 1: several sampled revisions per first attempt, one verified
            fix kept per first attempt: RISE's best-of-N self-distillation, Qu et al. 2024)
  verify    the task verifier checks both attempts; with `selector: judge` the model also
            self-judges both and "better" means a higher self-score (ties/unparsable dropped, counted)
  build     data from the outcome of each (first, second) attempt:
              fixed   (t1 wrong -> t2 right): SELF: SFT prompt -> revision (the model learns to answer
                      as well as it refines); SCoRe: the whole two-attempt transcript -> revision,
                      and a DPO pair (good second attempt) over (the wrong first attempt repeated);
              kept    (right -> right): optional SCoRe transcripts teaching "do not break a right answer";
              broke   (right -> wrong): a DPO pair (keep the right answer) over (the broken revision);
              stuck   (wrong -> wrong): no data.
  train     TRL SFT or DPO -> checkpoints/iter-<i>
  evaluate  held-out tasks, greedy: first-attempt accuracy, second-attempt accuracy, the "fixed" rate
            (wrong -> right) and the "broke" rate (right -> wrong), self-reward of the final answer,
            its gap to the verifier, and length, all with bootstrap CIs and paired tests vs iteration 0.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from selflab.loops.base import Loop, LoopConfig, StageContext, register_loop
from selflab.loops.judging import judge_answers
from selflab.loops.measures import Answer, sample_answers, sample_answers_on
from selflab.loops.refinement import (
    Refinement,
    build_refine_data,
    critique_messages,
    refine_measures,
    revise_messages,
)
from selflab.models.types import GenerationRequest, LanguageModel, Message, SamplingParams
from selflab.tasks import Task
from selflab.tasks.splits import family_tasks
from selflab.training import TrainConfig, dpo_rows, save_parquet, sft_rows

Family = Literal["arithmetic", "word_problems", "instructions", "facts"]


class RefineConfig(LoopConfig):
    """Defaults: a budget of a few minutes per iteration on a 2-core CPU."""

    mode: Literal["self", "retry"] = Field(
        "self", description="self: critique then revise (SELF); retry: SCoRe's bare retry instruction"
    )
    families: list[Family] = Field(default_factory=lambda: ["arithmetic", "word_problems"])
    train_tasks: int = Field(
        32, ge=1, description="fresh training tasks per iteration (split across families)"
    )
    eval_tasks: int = Field(40, ge=2, description="fixed held-out tasks (split across families)")
    heldout_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    attempts_per_task: int = Field(2, ge=1, description="sampled first attempts per training task")
    revisions_per_attempt: int = Field(
        1,
        ge=1,
        description="sampled second attempts per first attempt; > 1 is RISE's best-of-N "
        "self-distillation (one verified fix per first attempt becomes data)",
    )
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(64, ge=8)
    critique_max_new_tokens: int = Field(48, ge=8)
    eval_max_new_tokens: int = Field(64, ge=8)
    selector: Literal["verifier", "judge"] = Field(
        "verifier", description="who decides that the revision is better: the task verifier or the self-judge"
    )
    judge_max_new_tokens: int = Field(4, ge=1)
    self_judge_eval: bool = Field(True, description="self-judge the held-out final answers (self-reward)")
    objective: Literal["sft", "dpo"] = "sft"
    data: Literal["self", "transcript", "both"] = Field(
        "transcript",
        description="SFT data: transcript (two-attempt chat -> revision: self-correction); self "
        "(prompt -> revision, SELF: improves the FIRST attempt, not self-correction); both",
    )
    keep_correct: bool = Field(
        False, description="add right->right transcripts (SCoRe reports they teach never editing)"
    )

    max_kept_fraction: float = Field(
        0.5, ge=0.0, le=1.0, description="right->right examples at most this share of the SFT data"
    )
    drop_truncated: bool = Field(True, description="never imitate an answer cut off by max_new_tokens")
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lora=True, learning_rate=2e-4, epochs=2, batch_size=8)
    )

    @field_validator("mode", "data", mode="before")
    @classmethod
    def _old_names(cls, v: object, info: ValidationInfo) -> object:
        """Earlier configs said "score" for both; it meant the bare retry / the transcript data."""
        if v == "score":
            return "retry" if info.field_name == "mode" else "transcript"
        return v


def _requests(chats: Sequence[list[Message]], sampling: SamplingParams, seed: int) -> list[GenerationRequest]:
    out = []
    for i, m in enumerate(chats):
        s = sampling if sampling.greedy else sampling.model_copy(update={"seed": seed + i})
        out.append(GenerationRequest(messages=tuple(m), sampling=s))
    return out


def run_critique(
    model: LanguageModel, refs: list[Refinement], sampling: SamplingParams, seed: int
) -> list[Refinement]:
    """Fill `critique` for every refinement, in one generate call."""
    outs = model.generate(_requests([critique_messages(r) for r in refs], sampling, seed))
    return [
        r.model_copy(update={"critique": o.text, "error": r.error or o.error})
        for r, o in zip(refs, outs, strict=True)
    ]


def run_revision(
    model: LanguageModel, refs: list[Refinement], mode: str, sampling: SamplingParams, seed: int
) -> list[Refinement]:
    """Fill `second` for every refinement, in one generate call."""
    outs = model.generate(_requests([revise_messages(r, mode) for r in refs], sampling, seed))
    return [
        r.model_copy(
            update={
                "second": o.text,
                "second_tokens": o.completion_tokens,
                "second_finish": o.finish_reason,
                "error": r.error or o.error,
            }
        )
        for r, o in zip(refs, outs, strict=True)
    ]


def from_answers(answers: Sequence[Answer]) -> list[Refinement]:
    return [
        Refinement(
            task_id=a.task_id,
            prompt=a.prompt,
            sample=a.sample,
            first=a.response,
            first_tokens=a.completion_tokens,
            first_finish=a.finish_reason,
            error=a.error,
        )
        for a in answers
    ]


def verify_refinements(tasks: Sequence[Task], refs: list[Refinement]) -> list[Refinement]:
    """Verifier verdicts on both attempts (a generation error fails both)."""
    by_id = {t.id: t for t in tasks}
    out = []
    for r in refs:
        t = by_id[r.task_id]
        if r.error:
            upd = dict(first_ok=False, second_ok=False, first_reason=f"error: {r.error}", second_reason="")
        else:
            v1, v2 = t.verify(r.first), t.verify(r.second)
            upd = dict(first_ok=v1.ok, second_ok=v2.ok, first_reason=v1.reason, second_reason=v2.reason)
        out.append(r.model_copy(update=upd))
    return out


def judge_refinements(
    model: LanguageModel, refs: list[Refinement], seed: int, max_new_tokens: int
) -> list[Refinement]:
    """Self-judge both attempts (one batched judge call over 2n answers); scores in [0, 1] or None."""
    answers = []
    for i, r in enumerate(refs):
        answers.append(Answer(task_id=f"{i}", prompt=r.prompt, sample=0, response=r.first))
        answers.append(Answer(task_id=f"{i}", prompt=r.prompt, sample=1, response=r.second))
    judged = judge_answers(model, answers, 1, seed, max_new_tokens)
    return [
        r.model_copy(
            update={"first_score": judged[2 * i].self_score, "second_score": judged[2 * i + 1].self_score}
        )
        for i, r in enumerate(refs)
    ]


# -- the loop ------------------------------------------------------------------------------------


@register_loop
class SelfRefineLoop(Loop):
    name = "self-refine"
    description = "SELF/SCoRe: answer, self-critique, revise; train on revisions the verifier finds better"
    Config = RefineConfig
    baseline_stages = ("evaluate",)
    stages = ("attempt", "critique", "revise", "verify", "build", "train", "evaluate")
    config: RefineConfig

    def train_tasks(self, iteration: int) -> list[Task]:
        c = self.config
        return family_tasks(
            c.families, c.train_tasks, self.seed_for("train", iteration), False, c.heldout_fraction
        )

    def eval_tasks(self) -> list[Task]:
        c = self.config
        return family_tasks(c.families, c.eval_tasks, self.seed_for("eval"), True, c.heldout_fraction)

    def _sampling(self, max_new_tokens: int) -> SamplingParams:
        c = self.config
        return SamplingParams(temperature=c.temperature, top_p=c.top_p, max_new_tokens=max_new_tokens)

    def stage_attempt(self, ctx: StageContext) -> None:
        c = self.config
        answers = sample_answers_on(  # in process by default; on Ray workers with `executor: ray`
            self.executor,
            self.policy_spec(ctx.iteration),
            self.train_tasks(ctx.iteration),
            c.attempts_per_task,
            self._sampling(c.max_new_tokens),
            self.seed_for("attempt", ctx.iteration),
            load=self.load,
        )
        refs = from_answers(answers)
        ctx.out.extend(refs)
        ctx.info.update(attempts=len(refs), tokens=sum(r.first_tokens for r in refs))

    def stage_critique(self, ctx: StageContext) -> None:
        c = self.config
        refs = self.read(ctx.iteration, "attempt", Refinement)
        if c.mode == "self":
            model = self.load(self.policy_spec(ctx.iteration))
            refs = run_critique(
                model,
                refs,
                self._sampling(c.critique_max_new_tokens),
                self.seed_for("critique", ctx.iteration),
            )
        ctx.out.extend(refs)
        ctx.info["critiques"] = sum(1 for r in refs if r.critique)

    def stage_revise(self, ctx: StageContext) -> None:
        c = self.config
        refs = self.read(ctx.iteration, "critique", Refinement)
        if c.revisions_per_attempt > 1:
            refs = self._best_of_n(refs, self.train_tasks(ctx.iteration))
        model = self.load(self.policy_spec(ctx.iteration))
        refs = run_revision(
            model, refs, c.mode, self._sampling(c.max_new_tokens), self.seed_for("revise", ctx.iteration)
        )
        ctx.out.extend(refs)
        ctx.info["tokens"] = sum(r.second_tokens for r in refs)

    def _best_of_n(self, refs: list[Refinement], tasks: Sequence[Task]) -> list[Refinement]:
        """`revisions_per_attempt` second attempts per first attempt, numbered in `revision`. With
        the verifier as selector, a first attempt it already passes gets one: more revisions of
        it can break it but never fix it (RISE rolls on only after a wrong turn)."""
        by_id = {t.id: t for t in tasks}
        out: list[Refinement] = []
        for r in refs:
            right = self.config.selector == "verifier" and not r.error and by_id[r.task_id].verify(r.first).ok
            n = 1 if right else self.config.revisions_per_attempt
            out.extend(r.model_copy(update={"revision": k}) for k in range(n))
        return out

    def stage_verify(self, ctx: StageContext) -> None:
        c = self.config
        refs = verify_refinements(
            self.train_tasks(ctx.iteration), self.read(ctx.iteration, "revise", Refinement)
        )
        if c.selector == "judge":
            model = self.load(self.policy_spec(ctx.iteration))
            refs = judge_refinements(
                model, refs, self.seed_for("judge", ctx.iteration), c.judge_max_new_tokens
            )
        ctx.out.extend(refs)
        outcomes = Counter(r.outcome for r in refs)
        n = max(1, len(refs))
        ctx.info.update(
            train_first_accuracy=round(sum(1 for r in refs if r.first_ok) / n, 4),
            train_second_accuracy=round(sum(1 for r in refs if r.second_ok) / n, 4),
            **{f"train_{k}": v for k, v in sorted(outcomes.items())},
        )

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        refs = self.read(ctx.iteration, "verify", Refinement)
        built = build_refine_data(
            refs,
            c.mode,
            c.selector,
            c.data,
            c.keep_correct,
            c.max_kept_fraction,
            c.drop_truncated,
            seed=self.seed_for("build", ctx.iteration),
        )
        if c.objective == "sft":
            ctx.out.extend(built.sft)
            if built.sft:
                save_parquet(sft_rows(built.sft), ctx.data_path("sft"))
            ctx.info["examples"] = len(built.sft)
        else:
            ctx.out.extend(built.pairs)
            if built.pairs:
                save_parquet(dpo_rows(built.pairs), ctx.data_path("dpo"))
            ctx.info["examples"] = len(built.pairs)
        ctx.info.update(built.counts)

    def stage_train(self, ctx: StageContext) -> None:
        c = self.config
        self.train_or_carry(ctx, c.objective, ctx.data_path(c.objective), c.train)

    def stage_evaluate(self, ctx: StageContext) -> None:
        c = self.config
        spec = self.model_after(ctx.iteration)
        model = self.load(spec)
        tasks = self.eval_tasks()
        greedy = SamplingParams(temperature=0.0, max_new_tokens=c.eval_max_new_tokens)
        refs = from_answers(sample_answers(model, tasks, 1, greedy, 0))
        if c.mode == "self":
            refs = run_critique(
                model, refs, greedy.model_copy(update={"max_new_tokens": c.critique_max_new_tokens}), 0
            )
        refs = run_revision(model, refs, c.mode, greedy, 0)
        refs = verify_refinements(tasks, refs)
        if c.self_judge_eval:
            refs = judge_refinements(model, refs, self.seed_for("eval-judge"), c.judge_max_new_tokens)
        ctx.out.extend(refs)
        ms = refine_measures(refs, c.self_judge_eval)
        info = (
            self.stage_infos(
                ctx.iteration,
                [
                    "train_first_accuracy",
                    "train_second_accuracy",
                    "train_fixed",
                    "train_broke",
                    "examples",
                    "pairs",
                    "steps",
                    "train_loss",
                ],
            )  # fmt: skip
            if ctx.iteration > 0
            else {}
        )
        ctx.info["fixed"] = sum(1 for r in refs if r.outcome == "fixed")
        ctx.info["broke"] = sum(1 for r in refs if r.outcome == "broke")
        self.meter.record(ctx.iteration, spec, ms, info=info, gap=("self_reward", "second_attempt_accuracy"))
