"""Step-wise self-training: the model learns where its own solutions first go wrong.

Per iteration, on training problems of the step families (templates and entities disjoint from
the held-out ones):

  generate  N sampled solutions per problem from the current model
  label     code labels every step (correct / wrong / unparsable) and the final answer
  rollout   for each solution with a first error at step k, the model continues R times from its
            own correct steps 1..k-1 (Math-Shepherd-style rollouts); code labels the continuations
  build     step-level preference pairs: the shared correct prefix + a correct continuation
            (chosen) against the same prefix + the model's erroneous continuation (rejected), so
            the pair differs from the first error on; a code-written continuation stands in when
            no rollout is correct (`code_fallback`, counted per source). Plus step-judge pairs
            from code labels ("Verdict: correct" vs "incorrect"), which teach the judge.
            KTO alternative: single labelled steps (prefix + step, desirable iff the step is right)
            and labelled verdicts.
  train     TRL DPO or KTO (LoRA) -> checkpoints/iter-<i>
  evaluate  truth meter on held-out problems: final-answer accuracy (greedy), all-steps-correct
            rate, first-error localisation by the trained model as step judge on code-made
            mistakes, and the self-reward (its own step judge's weakest-step P(correct) on its
            own solutions) with the self-reward minus accuracy gap.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field

from selflab.loops.base import Loop, LoopConfig, StageContext, register_loop
from selflab.loops.truth_meter import Measurement
from selflab.models.types import GenerationRequest, SamplingParams
from selflab.stepwise import get_family, step_problems
from selflab.stepwise.judges import LikelihoodStepJudge, LLMStepJudge
from selflab.stepwise.pairs import (
    Rollout,
    Sample,
    judge_pairs,
    kto_examples,
    prefix_text,
    step_pairs,
)
from selflab.stepwise.types import BenchSolution, StepProblem
from selflab.training import PreferencePair, TrainConfig, dpo_rows, kto_rows, save_parquet


class StepwiseConfig(LoopConfig):
    """Defaults fit a short run of the embedded model on a shared 2-core CPU."""

    families: list[str] = Field(default_factory=lambda: ["arithmetic", "blocks", "dates", "detective"])
    train_problems: int = Field(8, ge=1, description="fresh training problems per family per iteration")
    eval_problems: int = Field(10, ge=1, description="fixed held-out problems per family")
    bench_items: int = Field(8, ge=0, description="held-out code-made-mistake items per family for the judge")
    samples_per_problem: int = Field(4, ge=1)
    rollouts: int = Field(
        2, ge=0, description="continuations sampled from each erroneous solution's correct prefix"
    )
    code_fallback: bool = Field(True, description="chosen = code continuation when no rollout is correct")
    max_pairs: int = Field(64, ge=1)
    judge_examples: int = Field(24, ge=0, description="step-judge examples (balanced) per iteration")
    judge: Literal["likelihood", "llm"] = "likelihood"
    judge_max_steps: int = Field(8, ge=1, description="steps judged per solution for the self-reward")
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(120, ge=8)
    eval_max_new_tokens: int = Field(120, ge=8)
    objective: Literal["dpo", "kto"] = "dpo"
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lora=True, learning_rate=5e-5, epochs=1, batch_size=4)
    )


@register_loop
class StepwiseLoop(Loop):
    name = "stepwise"
    description = "step-level DPO/KTO from code step labels; held-out accuracy and first-error truth meter"
    Config = StepwiseConfig
    baseline_stages = ("evaluate",)
    stages = ("generate", "label", "rollout", "build", "train", "evaluate")
    config: StepwiseConfig

    # -- fixed sets (pure functions of the config) ------------------------------------------------
    def train_problems(self, iteration: int) -> list[StepProblem]:
        c = self.config
        return [
            p
            for f in c.families
            for p in step_problems(f, c.train_problems, self.seed_for("train", iteration, f), "train")
        ]

    def eval_problems(self) -> list[StepProblem]:
        c = self.config
        return [
            p
            for f in c.families
            for p in step_problems(f, c.eval_problems, self.seed_for("eval", f), "heldout")
        ]

    def bench(self) -> list[BenchSolution]:
        from selflab.stepwise.bench import injected_items

        c = self.config
        seed = self.seed_for("bench") % 100_000
        # correct_fraction 0.3 as in `selflab bench steps`; the items use held-out problems of another seed
        return [it for f in c.families for it in injected_items(f, c.bench_items, seed, 0.3)]

    def _sample(
        self, model: object, problems: list[StepProblem], n: int, sampling: SamplingParams, seed: int
    ) -> list[Sample]:
        reqs = []
        for p in problems:
            for _ in range(n):
                s = sampling if sampling.greedy else sampling.model_copy(update={"seed": seed + len(reqs)})
                reqs.append(GenerationRequest(messages=get_family(p.family).messages(p), sampling=s))
        outs = model.generate(reqs) if reqs else []  # type: ignore[attr-defined]
        return [
            Sample(
                problem=problems[i // n],
                sample=i % n,
                text="" if o.error else o.text,
                tokens=o.completion_tokens,
            )
            for i, o in enumerate(outs)
        ]

    # -- stages -----------------------------------------------------------------------------------
    def stage_generate(self, ctx: StageContext) -> None:
        c = self.config
        model = self.load(self.policy_spec(ctx.iteration))
        sampling = SamplingParams(temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens)
        samples = self._sample(
            model,
            self.train_problems(ctx.iteration),
            c.samples_per_problem,
            sampling,
            self.seed_for("gen", ctx.iteration),
        )
        ctx.out.extend(samples)
        ctx.info.update(samples=len(samples), tokens=sum(s.tokens for s in samples))

    def stage_label(self, ctx: StageContext) -> None:
        samples = self.read(ctx.iteration, "generate", Sample)
        out = [
            s.model_copy(update={"labelled": get_family(s.problem.family).label(s.problem, s.text)})
            for s in samples
        ]
        ctx.out.extend(out)
        labs = [s.labelled for s in out if s.labelled]
        ctx.info.update(
            answer_correct=sum(1 for lab in labs if lab.answer_ok),
            all_steps_correct=sum(1 for lab in labs if lab.first_error == -1 and lab.steps),
            with_first_error=sum(1 for lab in labs if lab.first_error >= 0),
            empty=sum(1 for lab in labs if lab.status == "empty"),
            no_steps=sum(1 for lab in labs if lab.status == "no_steps"),
            no_answer=sum(1 for lab in labs if lab.status == "no_answer"),
            unparsable_steps=sum(lab.unparsable for lab in labs),
        )

    def _erroneous(self, iteration: int) -> list[Sample]:
        c = self.config
        bad = [s for s in self.read(iteration, "label", Sample) if s.labelled and s.labelled.first_error >= 0]
        rng = random.Random(self.seed_for("pick", iteration))
        rng.shuffle(bad)
        return bad[: c.max_pairs]

    def stage_rollout(self, ctx: StageContext) -> None:
        c = self.config
        bad = self._erroneous(ctx.iteration)
        if not bad or c.rollouts == 0:
            ctx.info["rollouts"] = 0
            return
        model = self.load(self.policy_spec(ctx.iteration))
        seed = self.seed_for("rollout", ctx.iteration)
        reqs, where = [], []
        for s in bad:
            assert s.labelled is not None
            at = s.labelled.first_error
            prefix = prefix_text([x.text for x in s.labelled.steps[:at]])
            fam = get_family(s.problem.family)
            for k in range(c.rollouts):
                sp = SamplingParams(
                    temperature=c.temperature,
                    top_p=c.top_p,
                    max_new_tokens=c.max_new_tokens,
                    seed=seed + len(reqs),
                )
                reqs.append(
                    GenerationRequest(messages=fam.messages(s.problem), sampling=sp, assistant_prefix=prefix)
                )
                where.append((s, at, k, prefix))
        outs = model.generate(reqs)
        rolls = []
        for (s, at, k, prefix), o in zip(where, outs, strict=True):
            cont = "" if o.error else o.text
            lab = get_family(s.problem.family).label(s.problem, prefix + cont)
            rolls.append(
                Rollout(problem_id=s.problem.id, sample=s.sample, at=at, k=k, continuation=cont, labelled=lab)
            )
        ctx.out.extend(rolls)
        ctx.info.update(
            rollouts=len(rolls),
            fully_correct=sum(1 for r in rolls if r.labelled.first_error == -1 and r.labelled.answer_ok),
            step_fixed=sum(1 for r in rolls if r.labelled.first_error == -1 or r.labelled.first_error > r.at),
        )

    def _pairs(self, iteration: int) -> tuple[list[PreferencePair], dict[str, int]]:
        rolls = self.read(iteration, "rollout", Rollout) if self.config.rollouts else []
        return step_pairs(self._erroneous(iteration), rolls, self.config.code_fallback)

    def _judge_pairs(self, iteration: int) -> list[PreferencePair]:
        """Balanced step-verdict pairs from code labels of this iteration's samples."""
        rng = random.Random(self.seed_for("judge-pairs", iteration))
        return judge_pairs(self.read(iteration, "label", Sample), self.config.judge_examples, rng)

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        pairs, counts = self._pairs(ctx.iteration)
        judge = self._judge_pairs(ctx.iteration) if c.judge_examples else []
        rng = random.Random(self.seed_for("build", ctx.iteration))
        everything = pairs + judge
        rng.shuffle(everything)
        ctx.out.extend(everything)
        ctx.info.update(step_pairs=len(pairs), judge_pairs=len(judge), **counts)
        # KTO alternative: single labelled steps (each pair's diverging step, either side)
        rows = dpo_rows(everything) if c.objective == "dpo" else kto_rows(kto_examples(everything))
        ctx.info["examples"] = len(rows)
        if rows:
            save_parquet(rows, ctx.data_path(c.objective))

    def stage_train(self, ctx: StageContext) -> None:
        self.train_or_carry(
            ctx, self.config.objective, ctx.data_path(self.config.objective), self.config.train
        )

    def stage_evaluate(self, ctx: StageContext) -> None:
        c = self.config
        spec = self.model_after(ctx.iteration)
        model = self.load(spec)
        problems = self.eval_problems()
        greedy = SamplingParams(temperature=0.0, max_new_tokens=c.eval_max_new_tokens)
        sols = self._sample(model, problems, 1, greedy, 0)
        for s in sols:
            s.labelled = get_family(s.problem.family).label(s.problem, s.text)
        judge = LikelihoodStepJudge(model) if c.judge == "likelihood" else LLMStepJudge(model)
        self_scores: list[float | bool | None] = []
        for s in sols:
            assert s.labelled is not None
            steps = [x.text for x in s.labelled.steps[: c.judge_max_steps]]
            if not steps:
                self_scores.append(None)
                continue
            j = judge.judge(get_family(s.problem.family), [(s.problem.id, s.problem, steps)])[0]
            self_scores.append(j.min_p())
        from selflab.stepwise.bench import judge_items

        items = self.bench()
        judged = judge_items(judge, items)
        ctx.out.extend(sols)
        ctx.out.extend(judged)
        labs = [s.labelled for s in sols if s.labelled is not None]
        acc = [bool(lab.answer_ok) for lab in labs]
        ms = [
            Measurement(
                name="heldout_accuracy",
                kind="objective",
                values=acc,
                description="final answer right, greedy, held-out templates/entities",
                primary=True,
            ),
            Measurement(
                name="heldout_all_steps_correct",
                kind="objective",
                values=[bool(lab.answer_ok) and lab.first_error == -1 and bool(lab.steps) for lab in labs],
                description="every step correct by code and the answer right",
            ),
        ]
        for f in c.families:
            ms.append(
                Measurement(
                    name=f"heldout_accuracy_{f}",
                    kind="objective",
                    values=[bool(lab.answer_ok) for lab in labs if lab.family == f],
                    description=f"final-answer accuracy on held-out {f} problems",
                )
            )
        if items:
            ms.append(
                Measurement(
                    name="judge_first_error_acc",
                    kind="objective",
                    values=[
                        None if (p := j.first_error()) is None else p == it.labelled.first_error
                        for it, j in zip(items, judged, strict=True)
                    ],
                    description=f"the model as {c.judge} step judge finds the first wrong step (-1: none) on code-made mistakes",
                )
            )
        ms += [
            Measurement(
                name="self_reward",
                kind="self_reward",
                values=self_scores,
                description="own step judge: weakest step's P(correct) on own held-out solutions",
            ),
            Measurement(
                name="response_tokens",
                kind="drift",
                values=[float(s.tokens) for s in sols],
                higher_is_better=False,
                description="completion tokens per held-out solution",
            ),
        ]
        info: dict[str, float | int | str | None] = {}
        if ctx.iteration > 0:
            done = self.run.completed_stages()
            for stage in ("label", "rollout", "build", "train"):
                st = done.get(f"iter-{ctx.iteration}.{stage}")
                for k, v in (st.info if st else {}).items():
                    if k != "seconds" and isinstance(v, int | float | str):
                        info[f"{stage}.{k}"] = v
        ctx.info["heldout_correct"] = sum(acc)
        self.meter.record(ctx.iteration, spec, ms, info=info, gap=("self_reward", "heldout_accuracy"))


__all__ = ["Rollout", "Sample", "StepwiseConfig", "StepwiseLoop"]
