"""Judge distillation: make the model a better judge, off-policy from a jury and on-policy from its
own meta-judgments, and measure it on a held-out judge benchmark of code-verified truth.

Each iteration runs one phase, `phases[(i - 1) % len(phases)]` (default: iteration 1 = SFT,
iteration 2 = DPO, so the meter shows before, after SFT and after SFT+DPO, each with CIs and
paired tests against iteration 0 and the previous iteration):

  sft (off-policy)  label     a diverse jury (personas) on the TEACHER model scores training
                              candidates and compares training pairs; its majority labels (score
                              ties broken uniformly at random, seeded, never toward one end) are
                              the targets. The teacher is `teacher_model` (an `openai:` model or a
                              larger local folder, as the research plan's stronger jury); without
                              one it is the starting model, and the run says so. The items'
                              verified truth is NOT used for training, only to record how good
                              the teacher was. Training items are on the training side of the
                              entity split, the benchmark on the held-out side.
                    build     SFT rows "Score: <jury majority>" / "Verdict: [[A|B]]" (both orders);
                              unlabeled and tied items dropped and counted
  dpo (on-policy)   sample    the current judge grades each training candidate k times (sampled)
                    meta_judge the same model as MetaJudge picks the better of two disagreeing
                              judgments (both orders); ties/unparsable dropped and counted; how
                              often it picked the judgment that matches the truth is recorded
                    build     DPO pairs: preferred vs rejected judgment
  both              train     TRL SFT or DPO (LoRA by default) -> checkpoints/iter-<i>
                    evaluate  held-out judge benchmark: pointwise accuracy, pair accuracy from
                              scores, pairwise-judge accuracy and position consistency, agreement
                              with the teacher jury (the proxy the SFT phase optimises: the gap
                              proxy minus truth is the drift signal), plus the shared meter
                              (held-out verifier accuracy, self-reward, length).

The labels and SFT demonstrations are built in `judge_labels`; the judge's own held-out measures
(pairwise accuracy, agreement with the teacher) are in `judge_measures`.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field

from selflab.loops.base import Loop, StageContext, register_loop
from selflab.loops.benchmark import BenchPair, BenchUnit, bench_slice, train_bench
from selflab.loops.evaluation import EvalConfig, evaluate_standard
from selflab.loops.judge_labels import (
    LabelRecord,
    balance_pointwise,
    sft_examples,
    teacher_accuracy,
    unbiased_majority,
    verified_labels,
)
from selflab.loops.judge_measures import TeacherLabel, pairwise_bench, teacher_measures
from selflab.loops.judging import JudgedAnswer, MetaRecord, judge_pairs
from selflab.loops.measures import Answer
from selflab.training import TrainConfig, dpo_rows, save_parquet, sft_rows

Phase = Literal["sft", "dpo"]


class JudgeDistillationConfig(EvalConfig):
    phases: list[Phase] = Field(default_factory=lambda: ["sft", "dpo"], min_length=1)
    train_items: int = Field(
        24, ge=1, description="generated benchmark items to train on (3 candidates each)"
    )
    jury: str = Field("jury:personas:5", description="the teacher (a judge kind of selflab.judges)")
    teacher_model: str | None = Field(
        None,
        description="teacher model spec (openai:MODEL@URL, hf:/larger/model); None: the starting model "
        "(a fixed copy of the student: the run reports it as a self-teacher)",
    )
    labels: Literal["jury", "verified"] = Field(
        "jury",
        description="jury: the teacher's majority labels; verified: the teacher's labels where code "
        "verifies them, the verified truth where the majority is wrong, tied or unparsable",
    )
    pairwise: bool = Field(True, description="also distil pairwise verdicts (trained in both orders)")
    balance_labels: bool = Field(
        True,
        description="pointwise demonstrations balanced between high and low scores (the larger class "
        "downsampled, seeded): on unbalanced labels the judge learns the base rate (every score 0)",
    )
    teacher_eval: bool = Field(
        True,
        description="also run the teacher on the held-out units once, to meter agreement with it (the "
        "proxy of labels: jury); costs one jury pass over the benchmark",
    )
    dpo_judgments: int = Field(2, ge=2, description="sampled judgments per candidate in a DPO phase")
    dpo_temperature: float = Field(1.0, gt=0.0)
    judge_samples: int = Field(1, ge=1)
    bench_items: int = Field(12, ge=1)
    eval_tasks: int = Field(20, ge=2)
    control_tasks: int = Field(10, ge=0)
    sft_train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lora=True, learning_rate=2e-4, epochs=2, batch_size=8)
    )
    dpo_train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lora=True, learning_rate=5e-5, epochs=2, batch_size=4)
    )


@register_loop
class JudgeDistillationLoop(Loop):
    name = "judge-distillation"
    description = "judge training: SFT on a persona jury's majority labels, DPO on meta-judged judgments"
    Config = JudgeDistillationConfig
    baseline_stages = ("evaluate",)
    stages = ("label", "sample", "meta_judge", "build", "train", "evaluate")
    config: JudgeDistillationConfig

    def phase(self, iteration: int) -> Phase:
        return self.config.phases[(iteration - 1) % len(self.config.phases)]

    def heldout(self) -> tuple[list[BenchUnit], list[BenchPair]]:
        return bench_slice(self.config.bench_items, self.config.heldout_topic_fraction)

    def training_units(self, iteration: int) -> tuple[list[BenchUnit], list[BenchPair]]:
        c = self.config
        held, _ = self.heldout()
        seed = self.seed_for("train-items", iteration) % 100000
        return train_bench(c.train_items, seed, c.heldout_topic_fraction, held)

    def teacher_spec(self) -> str:
        return self.config.teacher_model or self.config.model

    def _teacher(self) -> object:
        from selflab.judges.factory import build_judge

        c = self.config
        model = self.load(self.teacher_spec())
        return build_judge(
            c.jury,
            model,
            direct=True,
            max_new_tokens=c.judge_max_new_tokens,
            seed=self.seed_for("jury"),
            aggregate="majority",
        )

    def stage_label(self, ctx: StageContext) -> None:
        from selflab.judges.types import PairwiseItem, PointwiseItem

        c = self.config
        if self.phase(ctx.iteration) != "sft":
            ctx.info["skipped"] = "dpo phase"
            return
        units, pairs = self.training_units(ctx.iteration)
        jury = self._teacher()
        scale = tuple(getattr(jury, "scale", (0.0, 5.0)))
        scores = jury.judge([PointwiseItem(prompt=u.prompt, response=u.response, id=u.id) for u in units])  # type: ignore[attr-defined]
        records = []
        for u, j in zip(units, scores, strict=True):
            votes = [float(v["score"]) for v in j.details.get("votes", []) if v.get("score") is not None]
            if not j.details.get("votes") and j.score is not None:
                votes = [float(j.score)]  # a single judge, not a jury
            label, broken = unbiased_majority(votes, self.seed_for("tie", u.id))
            records.append(
                LabelRecord(
                    unit_id=u.id,
                    mode="pointwise",
                    prompt=u.prompt,
                    response=u.response,
                    jury_score=label,
                    n_valid=len(votes),
                    tie_broken=broken,
                    correct=u.correct,
                    scale=scale,
                )
            )
        if c.pairwise and pairs:
            by_id = {u.id: u for u in units}
            items = [
                PairwiseItem(
                    prompt=by_id[p.a].prompt,
                    response_a=by_id[p.a].response,
                    response_b=by_id[p.b].response,
                    id=p.id,
                )
                for p in pairs
            ]
            verdicts = jury.compare(items)  # type: ignore[attr-defined]
            records += [
                LabelRecord(
                    unit_id=p.id,
                    mode="pairwise",
                    prompt=it.prompt,
                    response=it.response_a,
                    response_b=it.response_b,
                    jury_verdict=j.verdict,
                    n_valid=int(j.details.get("n_valid", 0)),
                    better=p.better,
                )
                for p, it, j in zip(pairs, items, verdicts, strict=True)
            ]
        ctx.info.update(teacher_accuracy(records, scale))  # type: ignore[arg-type]
        if c.labels == "verified":
            records = verified_labels(records, scale)  # type: ignore[arg-type]
            ctx.info["labels_corrected"] = sum(1 for r in records if r.corrected_from is not None)
        ctx.out.extend(records)
        ctx.info.update(
            labeled=sum(1 for r in records if r.jury_score is not None or r.jury_verdict is not None),
            units=len(records),
            score_ties_broken=sum(1 for r in records if r.tie_broken),
            teacher=self.teacher_spec(),
            self_teacher=self.config.teacher_model is None,
        )

    def stage_sample(self, ctx: StageContext) -> None:
        c = self.config
        if self.phase(ctx.iteration) != "dpo":
            ctx.info["skipped"] = "sft phase"
            return
        units, _ = self.training_units(ctx.iteration)
        answers = [
            Answer(task_id=u.id, prompt=u.prompt, sample=0, response=u.response, verified=u.correct)
            for u in units
        ]
        model = self.load(self.policy_spec(ctx.iteration))
        judged = self.self_judge(
            model,
            answers,
            c.dpo_judgments,
            self.seed_for("sample", ctx.iteration),
            max_new_tokens=c.judge_max_new_tokens,
            template=c.judge_template,
            fence=c.judge_fence,
            temperature=c.dpo_temperature,
            reasoning=c.judge_reasoning,
        )
        ctx.out.extend(judged)
        ctx.info.update(
            judgments=sum(len(a.scores) for a in judged),
            unparsable_judgments=sum(1 for a in judged for s in a.scores if s is None),
        )

    def stage_meta_judge(self, ctx: StageContext) -> None:
        if self.phase(ctx.iteration) != "dpo":
            ctx.info["skipped"] = "sft phase"
            return
        c = self.config
        judged = self.read(ctx.iteration, "sample", JudgedAnswer)
        model = self.load(self.policy_spec(ctx.iteration))
        records, counts = self.meta_judge(model, judged, 64 if c.judge_reasoning else 4, c.judge_reasoning)
        ctx.info.update(counts)
        by_id = {f"{a.task_id}#{a.sample}": a for a in judged}
        right = []
        for r in records:
            a = by_id[r.answer_id]
            if r.verdict in ("A", "B") and r.score_a is not None and r.score_b is not None:
                mid = sum(a.scale) / 2
                # the truth-matching judgment: above the midpoint for a correct candidate, below for a wrong one
                ok_a, ok_b = (r.score_a > mid) == bool(a.verified), (r.score_b > mid) == bool(a.verified)
                if ok_a != ok_b:
                    right.append((r.verdict == "A") == ok_a)
        ctx.out.extend(records)
        ctx.info["meta_judged"] = len(records)
        ctx.info["meta_decided_vs_truth"] = len(right)
        ctx.info["meta_accuracy_vs_truth"] = round(sum(right) / len(right), 4) if right else None

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        rng = random.Random(self.seed_for("build", ctx.iteration))
        if self.phase(ctx.iteration) == "sft":
            labels = self.read(ctx.iteration, "label", LabelRecord)
            dropped = 0
            scale = next((r.scale for r in labels if r.mode == "pointwise"), (0.0, 5.0))  # the jury's
            if c.balance_labels:
                labels, dropped = balance_pointwise(labels, scale, rng)
            examples, counts = sft_examples(labels, scale, c.judge_max_new_tokens, c.judge_template)
            counts["sft_dropped_for_balance"] = dropped
            rng.shuffle(examples)
            ctx.out.extend(examples)
            ctx.info.update(counts, examples=len(examples))
            if examples:
                save_parquet(sft_rows(examples), ctx.data_path("sft"))
            return
        pairs, counts = judge_pairs(self.read(ctx.iteration, "meta_judge", MetaRecord))
        rng.shuffle(pairs)
        ctx.out.extend(pairs)
        ctx.info.update(counts, pairs=len(pairs))
        if pairs:
            save_parquet(dpo_rows(pairs), ctx.data_path("dpo"))

    def stage_train(self, ctx: StageContext) -> None:
        phase = self.phase(ctx.iteration)
        cfg = self.config.sft_train if phase == "sft" else self.config.dpo_train
        ctx.info["phase"] = phase
        self.train_or_carry(ctx, phase, ctx.data_path(phase), cfg)

    def stage_evaluate(self, ctx: StageContext) -> None:
        c = self.config
        spec = self.model_after(ctx.iteration)
        units, pairs = self.heldout()
        teacher: list[TeacherLabel] = []
        if (
            c.teacher_eval and ctx.iteration == 0
        ):  # the teacher's labels on the held-out units: fixed, computed once
            from selflab.judges.types import PointwiseItem

            jury = self._teacher()
            lo, hi = getattr(jury, "scale", (0.0, 5.0))
            js = jury.judge([PointwiseItem(prompt=u.prompt, response=u.response, id=u.id) for u in units])  # type: ignore[attr-defined]
            teacher = [
                TeacherLabel(unit_id=u.id, score=None if j.score is None else (j.score - lo) / (hi - lo))
                for u, j in zip(units, js, strict=True)
            ]
        elif c.teacher_eval:
            teacher = [
                TeacherLabel.model_validate(d)
                for d in self.stage_log(0, "evaluate").read_dicts()
                if "unit_id" in d and "score" in d and "correct" not in d
            ]
        # the judge's headline measures: balanced pointwise accuracy (a constant verdict scores 0.5,
        # whatever the base rate) and pairwise accuracy in both orders
        ms = [
            m.model_copy(update={"primary": True}) if m.name == "judge_bench_balanced_accuracy" else m
            for m in evaluate_standard(self, ctx, c)
        ]
        model = self.load(spec)
        ms += pairwise_bench(model, units, pairs, c.judge_max_new_tokens)
        if teacher:
            ms += teacher_measures(self.stage_log(ctx.iteration, "evaluate").read_dicts(), teacher, ms, units)
        if ctx.iteration == 0:
            ctx.out.extend(teacher)
        info = self.stage_infos(
            ctx.iteration,
            (
                "phase",
                "teacher",
                "labeled",
                "score_ties_broken",
                "teacher_pointwise_accuracy",
                "teacher_pointwise_accuracy_ci",
                "teacher_pair_accuracy",
                "teacher_pair_accuracy_ci",
                "examples",
                "sft_unlabeled",
                "sft_ties",
                "pairs",
                "meta_ties",
                "meta_unparsable",
                "meta_accuracy_vs_truth",
                "steps",
                "train_loss",
            ),
        )
        self.meter.record(ctx.iteration, spec, ms, info=info, gap=("self_reward", "heldout_pass_rate"))
