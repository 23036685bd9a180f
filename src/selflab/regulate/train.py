"""Training from the constitution (Constitutional AI's supervised phase, IterAlign's self-reflection):
the model critiques and revises its own answers under the constitution, then learns the
revisions WITHOUT the constitution in the prompt (SFT on revisions, or DPO revision > original).

Per iteration:
  respond   sampled answers (no constitution) to red-team-split harmful requests, some wrapped in
            red-team-split jailbreak templates, and to red-team-split benign prompts
  critique  under the constitution: a critique citing principles, then a revision (two batched calls)
  build     SFT rows (prompt -> revision) or DPO pairs (revision chosen, original rejected);
            identical or empty revisions are dropped and counted
  train     TRL SFT/DPO with LoRA -> checkpoints/iter-<i>
  evaluate  the held-out truth meter: refusal on held-out harmful, attack success under held-out
            jailbreak templates, over-refusal on benign, verified-task accuracy (helpfulness control)

`ConstitutionEvalLoop` is the evaluate stage alone, for `selflab constitution eval`.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import BaseModel, Field

from selflab.loops.base import Loop, LoopConfig, StageContext
from selflab.models.types import GenerationRequest, SamplingParams, system, user
from selflab.regulate import datasets as D
from selflab.regulate.constitution import Constitution, load_constitution
from selflab.regulate.evaluate import (
    Item,
    Response,
    SuiteConfig,
    agreement,
    build_suite,
    measurements,
    respond,
)
from selflab.regulate.refusal import phrase_refusal
from selflab.training import PreferencePair, SFTExample, TrainConfig, dpo_rows, save_parquet, sft_rows


class EvalConfig(LoopConfig):
    iterations: int = Field(1, ge=1, le=1)
    constitution: str | None = Field(
        None, description="YAML path; None: the shipped starter; 'none': no system prompt"
    )
    suite: SuiteConfig = Field(default_factory=SuiteConfig)


class ConstitutionTrainConfig(LoopConfig):
    constitution: str | None = None
    harmful: int = Field(24, ge=0, description="red-team-split harmful requests per iteration")
    jailbreak_fraction: float = Field(0.5, ge=0.0, le=1.0, description="share of them wrapped in a template")
    benign: int = Field(8, ge=0, description="red-team-split benign prompts per iteration")
    temperature: float = Field(0.7, ge=0.0)
    max_new_tokens: int = Field(64, ge=8)
    critique_max_new_tokens: int = Field(64, ge=8)
    objective: Literal["sft", "dpo"] = "sft"
    eval_with_constitution: bool = Field(False, description="evaluate with the constitution as system prompt")
    suite: SuiteConfig = Field(default_factory=SuiteConfig)
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lora=True, learning_rate=2e-4, epochs=1, batch_size=4)
    )


class Revision(BaseModel):
    item_id: str
    set: str
    prompt: str
    original: str
    critique: str
    revision: str
    original_refused: bool | None = None
    revision_refused: bool | None = None


CRITIQUE = (
    "Request: {prompt}\n\nResponse: {response}\n\nName the principles above (by id) that this response "
    "breaks, and how. If the request is safe and the response helps, say 'No violation'."
)
REVISE = (
    "Request: {prompt}\n\nResponse: {response}\n\nCritique: {critique}\n\nRewrite the response so that it "
    "follows every principle above: refuse briefly if the request is harmful, help fully if it is "
    "safe. Write only the new response."
)


def _constitution(path: str | None) -> Constitution | None:
    return None if path == "none" else load_constitution(path)


class _SuiteMixin:
    config: EvalConfig | ConstitutionTrainConfig

    def evaluate(self, loop: Loop, ctx: StageContext, spec: str, cons: Constitution | None) -> None:
        c = self.config
        model = loop.load(spec)
        items = build_suite(c.suite, loop.seed_for("suite"))
        rs = respond(model, items, cons, c.suite.max_new_tokens, judge_model=model if c.suite.judge else None)
        ctx.out.extend(rs)
        info = agreement(rs)
        ctx.info.update(info)
        loop.meter.record(ctx.iteration, spec, measurements(rs), info=info)


class ConstitutionEvalLoop(_SuiteMixin, Loop):
    name = "constitution-eval"
    description = "held-out safety suite for one model under one constitution"
    Config = EvalConfig
    baseline_stages = ("evaluate",)
    stages = ()
    config: EvalConfig

    def plan(self) -> list[tuple[int, str]]:
        return [(0, "evaluate")]

    def stage_evaluate(self, ctx: StageContext) -> None:
        self.evaluate(self, ctx, self.config.model, _constitution(self.config.constitution))


class ConstitutionTrainLoop(_SuiteMixin, Loop):
    name = "constitution-train"
    description = "critique + revision under the constitution -> SFT/DPO; held-out safety truth meter"
    Config = ConstitutionTrainConfig
    baseline_stages = ("evaluate",)
    stages = ("respond", "critique", "build", "train", "evaluate")
    config: ConstitutionTrainConfig

    def cons(self) -> Constitution:
        return load_constitution(self.config.constitution)

    def train_items(self, iteration: int) -> list[Item]:
        c = self.config
        seed = self.seed_for("train-items", iteration)
        rng = random.Random(seed)
        templates = D.jailbreak_templates(50, "redteam", seed, c.suite.jailbreak_max_chars)
        items = []
        for h in D.harmful_prompts(c.suite.harmful_sets, c.harmful, "redteam", seed):
            if templates and rng.random() < c.jailbreak_fraction:
                t = rng.choice(templates)
                items.append(
                    Item(set="jailbreak", id=f"{t.id}|{h.id}", category=h.category, prompt=t.apply(h.text))
                )
            else:
                items.append(Item(set="harmful", id=h.id, category=h.category, prompt=h.text))
        for b in D.benign_prompts(c.benign, "redteam", seed):
            items.append(Item(set="benign", id=b.id, category=b.category, prompt=b.text))
        return items

    def stage_respond(self, ctx: StageContext) -> None:
        c = self.config
        model = self.load(self.policy_spec(ctx.iteration))
        items = self.train_items(ctx.iteration)
        seed = self.seed_for("respond", ctx.iteration)
        reqs = [
            GenerationRequest(
                messages=(user(it.prompt),),
                sampling=SamplingParams(
                    temperature=c.temperature, top_p=0.95, max_new_tokens=c.max_new_tokens, seed=seed + i
                ),
            )
            for i, it in enumerate(items)
        ]
        outs = model.generate(reqs)
        rs = [
            Response(
                set=it.set,
                item_id=it.id,
                category=it.category,
                prompt=it.prompt,
                response=o.text,
                completion_tokens=o.completion_tokens,
                finish_reason=o.finish_reason,
                error=o.error,
                refused=None if o.error else phrase_refusal(o.text),
            )
            for it, o in zip(items, outs, strict=True)
        ]
        ctx.out.extend(rs)
        ctx.info.update(answers=len(rs), refused=sum(1 for r in rs if r.refused))

    def _under_constitution(self, ctx: StageContext, texts: list[str], seed: int) -> list[str]:
        c = self.config
        model = self.load(self.policy_spec(ctx.iteration))
        sys_msg = system(self.cons().render())
        reqs = [
            GenerationRequest(
                messages=(sys_msg, user(t)),
                sampling=SamplingParams(
                    temperature=c.temperature,
                    top_p=0.95,
                    max_new_tokens=c.critique_max_new_tokens,
                    seed=seed + i,
                ),
            )
            for i, t in enumerate(texts)
        ]
        return [o.text.strip() if not o.error else "" for o in model.generate(reqs)]

    def stage_critique(self, ctx: StageContext) -> None:
        rs = [r for r in self.read(ctx.iteration, "respond", Response) if not r.error]
        seed = self.seed_for("critique", ctx.iteration)
        crit = self._under_constitution(
            ctx, [CRITIQUE.format(prompt=r.prompt[:1500], response=r.response) for r in rs], seed
        )
        revs = self._under_constitution(
            ctx,
            [
                REVISE.format(prompt=r.prompt[:1500], response=r.response, critique=k)
                for r, k in zip(rs, crit, strict=True)
            ],
            seed + 50_000,
        )
        out = [
            Revision(
                item_id=r.item_id,
                set=r.set,
                prompt=r.prompt,
                original=r.response,
                critique=k,
                revision=v,
                original_refused=r.refused,
                revision_refused=phrase_refusal(v),
            )
            for r, k, v in zip(rs, crit, revs, strict=True)
        ]
        ctx.out.extend(out)
        harm = [x for x in out if x.set != "benign"]
        ctx.info.update(
            revisions=len(out),
            harmful_revisions_refusing=sum(1 for x in harm if x.revision_refused),
            harmful_originals_refusing=sum(1 for x in harm if x.original_refused),
            benign_revisions_refusing=sum(1 for x in out if x.set == "benign" and x.revision_refused),
        )

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        revs = self.read(ctx.iteration, "critique", Revision)
        usable = [r for r in revs if r.revision.strip() and r.revision.strip() != r.original.strip()]
        rng = random.Random(self.seed_for("build", ctx.iteration))
        if c.objective == "sft":
            ex = [
                SFTExample(
                    prompt=[user(r.prompt)], response=r.revision, source="constitution-revision", id=r.item_id
                )
                for r in usable
            ]
            rng.shuffle(ex)
            ctx.out.extend(ex)
            rows = sft_rows(ex)
        else:
            pairs = [
                PreferencePair(
                    prompt=[user(r.prompt)],
                    chosen=r.revision,
                    rejected=r.original,
                    source="revision>original",
                    id=r.item_id,
                )
                for r in usable
            ]
            rng.shuffle(pairs)
            ctx.out.extend(pairs)
            rows = dpo_rows(pairs)
        ctx.info.update(examples=len(rows), dropped_identical_or_empty=len(revs) - len(usable))
        if rows:
            save_parquet(rows, ctx.data_path(c.objective))

    def stage_train(self, ctx: StageContext) -> None:
        self.train_or_carry(
            ctx, self.config.objective, ctx.data_path(self.config.objective), self.config.train
        )

    def stage_evaluate(self, ctx: StageContext) -> None:
        cons = self.cons() if self.config.eval_with_constitution else None
        self.evaluate(self, ctx, self.model_after(ctx.iteration), cons)

    def run_loop(self):  # noqa: ANN201
        out = super().run_loop()
        if self.config.report:
            from selflab.regulate.report import append_regulate_section

            append_regulate_section(self.run)
        return out
