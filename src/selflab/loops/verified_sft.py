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

import hashlib
import random
import shutil
from typing import Literal

from pydantic import Field

from selflab.errors import ConfigError
from selflab.loops.base import Loop, LoopConfig, StageContext, register_loop
from selflab.loops.measures import (
    Answer,
    judge_agreement,
    length,
    pass_rate,
    sample_answers,
    sample_answers_on,
    self_judge,
    self_reward,
    verify_answers,
)
from selflab.models.types import SamplingParams, user
from selflab.tasks import Task
from selflab.training import (
    KTOExample,
    PreferencePair,
    ScoredResponse,
    SFTExample,
    TrainConfig,
    build_pairs,
    dpo_rows,
    kto_rows,
    save_parquet,
    sft_rows,
    train,
)

TaskFamily = Literal["instructions", "arithmetic", "word_problems", "facts"]


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
    samples_per_task: int = Field(4, ge=1)
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(96, ge=8)
    eval_max_new_tokens: int = Field(96, ge=8)
    self_judge: bool = Field(True, description="self-judge answers (the self-reward)")
    judge_train_answers: bool = Field(True, description="also self-judge the training samples")
    judge_samples: int = Field(1, ge=1, description="k judgments averaged per answer")
    judge_max_new_tokens: int = Field(6, ge=1)
    objective: Literal["sft", "dpo", "kto"] = "sft"
    keep_per_task: int = Field(2, ge=1, description="SFT: most verified answers kept per task")
    drop_truncated: bool = Field(True, description="never imitate an answer cut off by max_new_tokens")
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lora=True, learning_rate=2e-4, epochs=2, batch_size=8)
    )


def _one_instruction(kind: str, seed: int) -> Task | None:
    """One instruction task of `kind`, or None when the generator's own reference check trips."""
    from selflab.tasks import instruction_tasks

    try:
        return instruction_tasks(1, seed=seed, kinds=(kind,))[0]
    except AssertionError:
        return None


def _family_tasks(family: TaskFamily, n: int, seed: int) -> list[Task]:
    from selflab import tasks as T

    if family == "arithmetic":
        return T.arithmetic_tasks(n, seed=seed)
    if family == "word_problems":
        return T.word_problem_tasks(n, seed=seed)
    if family == "facts":
        return T.fact_tasks(n, seed=seed)
    raise ConfigError(
        f"unknown task family {family!r}", "use instructions, arithmetic, word_problems or facts"
    )


def _is_heldout(task: Task, fraction: float) -> bool:
    """Held-out split by topic (instructions) or by prompt (other families): stable across runs."""
    key = str(task.meta.get("topic") or task.prompt)
    h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
    return h < fraction


def split_tasks(
    family: TaskFamily, n: int, seed: int, heldout: bool, fraction: float, kinds: list[str] | None = None
) -> list[Task]:
    """`n` distinct tasks on the train or held-out side of the split. Instruction tasks are
    balanced over constraint kinds (drawn one at a time per kind, so a generator hiccup skips one
    draw, not the batch)."""
    seen: set[str] = set()
    if family == "instructions":
        from selflab.tasks.instructions import CONSTRAINT_KINDS

        cycle = list(kinds) if kinds else list(CONSTRAINT_KINDS)
        out: list[Task] = []
        i = 0
        # Kinds without parameters have one prompt per topic; once a kind has no new prompt left
        # on this side of the split it drops out of the cycle.
        while len(out) < n:
            if not cycle:
                raise ConfigError(
                    f"only {len(out)} distinct tasks exist on this side of the split", "ask for fewer"
                )
            kind = cycle[i % len(cycle)]
            for attempt in range(80):
                t = _one_instruction(kind, seed * 1_000_003 + i * 1009 + attempt)
                if t is not None and _is_heldout(t, fraction) == heldout and t.prompt not in seen:
                    seen.add(t.prompt)
                    out.append(t.model_copy(update={"id": f"instr-{seed}-{len(out)}"}))
                    i += 1
                    break
            else:
                cycle.remove(kind)
        return out
    out = []
    for round_ in range(50):
        for t in _family_tasks(family, 4 * n + 8, seed * 1000 + round_):
            if _is_heldout(t, fraction) == heldout and t.prompt not in seen:
                seen.add(t.prompt)
                out.append(t)
                if len(out) == n:
                    return out
    raise ConfigError(f"could not draw {n} distinct {family} tasks", "ask for fewer tasks")


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
            answers = self_judge(
                model, answers, c.judge_samples, self.seed_for("judge", ctx.iteration), c.judge_max_new_tokens
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
            examples = []
            for task_id, group in by_task.items():
                good = [
                    a
                    for a in group
                    if a.verified
                    and a.response.strip()
                    and not (c.drop_truncated and a.finish_reason == "length")
                ]
                unique = list({a.response.strip(): a for a in good}.values())
                # Prefer what the self-judge liked (ties keep sample order); the verifier already admitted them.
                unique.sort(key=lambda a: -(a.self_score if a.self_score is not None else 0.0))
                for a in unique[: c.keep_per_task]:
                    examples.append(
                        SFTExample(
                            prompt=[user(a.prompt)],
                            response=a.response,
                            source="verified",
                            id=f"{task_id}#{a.sample}",
                        )
                    )
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
        data = ctx.data_path(c.objective)
        target = self.checkpoint_dir(ctx.iteration)
        if not data.exists():
            # Nothing verified: carry the previous model forward so the chain of iterations continues.
            from selflab.training import resolve_model_path

            src = resolve_model_path(self.policy_spec(ctx.iteration))
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(src, target)
            ctx.info.update(skipped="no training data", steps=0)
            return
        from selflab.training import load_rows

        cfg = c.train.model_copy(update={"seed": self.seed_for("train", ctx.iteration)})
        result = train(c.objective, self.policy_spec(ctx.iteration), load_rows(data), target, cfg)
        ctx.out.append(result)
        ctx.info.update(
            steps=result.steps,
            train_loss=round(result.train_loss, 4) if result.train_loss is not None else None,
            train_tokens_per_s=round(result.tokens / result.seconds, 1) if result.seconds else None,
        )

    def stage_evaluate(self, ctx: StageContext) -> None:
        c = self.config
        spec = self.model_after(ctx.iteration)
        model = self.load(spec)
        greedy = SamplingParams(temperature=0.0, max_new_tokens=c.eval_max_new_tokens)
        heldout, control = self.eval_tasks(), self.control_tasks()
        answers = sample_answers(model, heldout + control, 1, greedy, 0)
        answers = verify_answers(heldout + control, answers)
        main, ctrl = answers[: len(heldout)], answers[len(heldout) :]
        if c.self_judge:
            main = self_judge(
                model, main, c.judge_samples, self.seed_for("eval-judge"), c.judge_max_new_tokens
            )
        ctx.out.extend(main + ctrl)
        ms = [
            pass_rate(
                "heldout_pass_rate",
                main,
                "verifier pass rate, greedy, on held-out topics (training used the same verifier family)",
            )
        ]
        if ctrl:
            ms.append(
                pass_rate(f"control_{c.control_family}_accuracy", ctrl, "untrained task family (regressions)")
            )
        if c.self_judge:
            ms += [self_reward(main), judge_agreement(main)]
        ms.append(length(main))
        info: dict[str, float | int | str | None] = {}
        if ctx.iteration > 0:
            for stage in ("verify", "build", "train"):
                st = self.run.completed_stages().get(f"iter-{ctx.iteration}.{stage}")
                for k in ("train_pass_rate", "examples", "pairs", "steps", "train_loss"):
                    if st and k in st.info:
                        info[k] = st.info[k]
            jst = self.run.completed_stages().get(f"iter-{ctx.iteration}.judge")
            if jst:
                for k in ("self_reward_verified", "self_reward_failed", "unparsable"):
                    if k in jst.info:
                        info[f"train_{k}"] = jst.info[k]
        ctx.info["heldout_pass"] = sum(1 for a in main if a.verified)
        self.meter.record(ctx.iteration, spec, ms, info=info, gap=("self_reward", "heldout_pass_rate"))
