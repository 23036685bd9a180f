"""Generated data (proposer and solver, in the style of Absolute Zero / R-Zero): the model writes its
own questions, answers each of them several times, and learns from the answers its own majority
agrees on, or that code can verify. No prompt set is used: the only fixed text is three
format demonstrations and a list of topic words that steer variety.

Per iteration:
  propose  the model writes `proposals` math questions (one batched, seeded call; a topic word and
           an operation hint per request); each is parsed defensively and filtered: no question
           line, too short/long, no number, a copy of a demonstration, a duplicate, or a held-out
           evaluation prompt (leak) -> rejected and counted. Questions that are plain arithmetic
           ("What is 12 * 7?") are *checkable*: code computes their true answer.
  solve    `samples` sampled answers per valid question (one batched call)
  vote     each answer's final number; the majority answer and its agreement (share of samples);
           no number = an abstention; a tie for first place = no majority (counted); on checkable
           questions: was the majority right?
  build    solver SFT data: with `reward: majority`, answers that agree with a majority of at least
           `min_agreement` (ground truth never used); with `reward: verifier`, answers to checkable
           questions that code verifies; with `train_proposer`, the proposer learns to write the
           questions of intermediate difficulty (neither all samples agree nor all differ)
  train    TRL SFT -> checkpoints/iter-<i>
  evaluate held-out `selflab.tasks` (arithmetic and word problems, never proposed or trained on):
           greedy accuracy (objective, not optimised), self-consistency agreement of k samples (the
           self-reward this loop optimises), majority-vote accuracy, the gap, length; the
           iteration's proposal validity rate and majority-right rate on checkable proposals are
           shown with bootstrap CIs in the info line.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from selflab.loops.base import Loop, LoopConfig, StageContext, register_loop
from selflab.loops.consistency_eval import evaluate_heldout, heldout_measures
from selflab.loops.measures import sample_n
from selflab.loops.proposals import (
    ANSWER_SUFFIX,
    Proposal,
    Solution,
    Vote,
    filter_proposals,
    final_number,
    proposal_instructions,
    vote,
)
from selflab.loops.stats import bootstrap_ci
from selflab.models.types import GenerationRequest, LanguageModel, SamplingParams, user
from selflab.tasks import Task
from selflab.tasks.splits import family_tasks
from selflab.training import SFTExample, TrainConfig, save_parquet, sft_rows


class GeneratedDataConfig(LoopConfig):
    """Defaults: a budget of a few minutes per iteration on a 2-core CPU."""

    proposals: int = Field(48, ge=1, description="questions the model writes per iteration")
    propose_temperature: float = Field(0.8, ge=0.0)
    propose_prefix: bool = Field(
        True,
        description="start the reply with 'QUESTION:' and stop at the line end (a 135M model rarely keeps the format)",
    )
    propose_max_new_tokens: int = Field(48, ge=8)
    samples: int = Field(4, ge=2, description="answers per question (the vote)")
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(64, ge=8)
    reward: Literal["majority", "verifier"] = Field(
        "majority", description="majority: self-consistency, no ground truth; verifier: checkable only"
    )
    min_agreement: float = Field(0.5, gt=0.0, le=1.0, description="majority share needed to train on it")
    keep_per_question: int = Field(2, ge=1)
    train_proposer: bool = Field(
        True, description="also SFT the proposer on intermediate-difficulty questions"
    )
    drop_truncated: bool = True
    families: list[Literal["arithmetic", "word_problems"]] = Field(
        default_factory=lambda: ["arithmetic", "word_problems"], description="held-out evaluation families"
    )
    eval_tasks: int = Field(40, ge=2)
    heldout_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    eval_max_new_tokens: int = Field(64, ge=8)
    consistency_samples: int = Field(4, ge=2, description="k sampled answers per held-out task (self-reward)")
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lora=True, learning_rate=2e-4, epochs=2, batch_size=8)
    )


class BuildResult(BaseModel):
    examples: list[SFTExample] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)


def build_examples(
    proposals: Sequence[Proposal],
    solutions: Sequence[Solution],
    votes: Sequence[Vote],
    reward: str = "majority",
    min_agreement: float = 0.5,
    keep_per_question: int = 2,
    train_proposer: bool = True,
    drop_truncated: bool = True,
    seed: int = 0,
) -> BuildResult:
    """Solver and proposer SFT examples, with every drop counted.

    Solver (`majority`): a question whose majority share is below `min_agreement`, or has no
    majority, gives nothing; otherwise up to `keep_per_question` distinct answers whose final number
    equals the majority. (`verifier`): only checkable questions; answers equal to the true value.
    Truncated, empty and failed answers are never imitated.
    Proposer: questions where more than one sample agreed but not all did (1 < count < samples)."""
    c: Counter[str] = Counter()
    by_pid: dict[str, list[Solution]] = {}
    for s in solutions:
        by_pid.setdefault(s.proposal_id, []).append(s)
    props = {p.id: p for p in proposals}
    examples: list[SFTExample] = []
    for v in votes:
        c["questions"] += 1
        target: float | None
        if reward == "verifier":
            if not v.checkable or v.true_answer is None:
                c["dropped_not_checkable"] += 1
                target = None
            else:
                target = v.true_answer
        elif v.no_majority:
            c["dropped_no_majority"] += 1
            target = None
        elif v.agreement < min_agreement:
            c["dropped_low_agreement"] += 1
            target = None
        else:
            target = v.majority
        if target is not None:
            kept = 0
            texts: set[str] = set()
            for s in by_pid.get(v.proposal_id, []):
                if s.error or not s.response.strip() or s.answer is None or abs(s.answer - target) > 1e-6:
                    continue
                if drop_truncated and s.finish_reason == "length":
                    c["dropped_truncated_answer"] += 1
                    continue
                if s.response.strip() in texts or kept >= keep_per_question:
                    continue
                texts.add(s.response.strip())
                kept += 1
                examples.append(
                    SFTExample(
                        prompt=[user(s.question + ANSWER_SUFFIX)],
                        response=s.response,
                        source=f"solver-{reward}",
                        id=f"{v.proposal_id}#{s.sample}",
                    )
                )
            c["solver_examples"] += kept
            if kept:
                c["questions_used"] += 1
                if v.majority_correct is not None:
                    c["checkable_used"] += 1
                    c["checkable_used_majority_right"] += int(bool(v.majority_correct))
        if train_proposer:
            if 1 < v.majority_count < v.samples and not v.no_majority:
                p = props[v.proposal_id]
                examples.append(
                    SFTExample(
                        prompt=[user(p.instruction)],
                        response=f"QUESTION: {p.question}",
                        source="proposer",
                        id=f"{v.proposal_id}:proposer",
                    )
                )
                c["proposer_examples"] += 1
            else:
                c["proposer_skipped_not_intermediate"] += 1
    random.Random(seed).shuffle(examples)
    c["examples"] = len(examples)
    return BuildResult(examples=examples, counts=dict(sorted(c.items())))


def _ci_text(values: Sequence[bool], seed: int) -> str | None:
    if not values:
        return None
    return bootstrap_ci(list(values), seed=seed, resamples=1000).fmt()


# -- the loop ------------------------------------------------------------------------------------


@register_loop
class GeneratedDataLoop(Loop):
    name = "generated-data"
    description = "proposer/solver: own questions, answers kept by majority vote or a verifier; no prompt set"
    Config = GeneratedDataConfig
    baseline_stages = ("evaluate",)
    stages = ("propose", "solve", "vote", "build", "train", "evaluate")
    config: GeneratedDataConfig

    def eval_tasks(self) -> list[Task]:
        c = self.config
        return family_tasks(c.families, c.eval_tasks, self.seed_for("eval"), True, c.heldout_fraction)

    def stage_propose(self, ctx: StageContext) -> None:
        c = self.config
        model = self.load(self.policy_spec(ctx.iteration))
        instructions = proposal_instructions(c.proposals, self.seed_for("propose-prompts", ctx.iteration))
        base = self.seed_for("propose", ctx.iteration)
        prefix = "QUESTION:" if c.propose_prefix else ""
        sampling = SamplingParams(
            temperature=c.propose_temperature,
            top_p=c.top_p,
            max_new_tokens=c.propose_max_new_tokens,
            stop=("\n",) if c.propose_prefix else (),
        )
        reqs = [
            GenerationRequest(
                messages=(user(t),),
                sampling=sampling if sampling.greedy else sampling.model_copy(update={"seed": base + i}),
                assistant_prefix=prefix,
            )
            for i, t in enumerate(instructions)
        ]
        outs = model.generate(reqs)
        raws = [
            (f"q{ctx.iteration}-{i}", t, prefix + o.text if o.error is None else "")
            for i, (t, o) in enumerate(zip(instructions, outs, strict=True))
        ]
        proposals = filter_proposals(raws, forbidden=[t.prompt for t in self.eval_tasks()])
        ctx.out.extend(proposals)
        reasons = Counter(p.reason for p in proposals)
        ctx.info.update(
            proposals=len(proposals),
            valid=reasons.get("ok", 0),
            checkable=sum(1 for p in proposals if p.checkable),
            **{f"rejected_{k.replace(' ', '_')}": v for k, v in sorted(reasons.items()) if k != "ok"},
        )

    def stage_solve(self, ctx: StageContext) -> None:
        c = self.config
        proposals = [p for p in self.read(ctx.iteration, "propose", Proposal) if p.valid]
        model = self.load(self.policy_spec(ctx.iteration))
        sols = solve(model, proposals, c.samples, c, self.seed_for("solve", ctx.iteration))
        ctx.out.extend(sols)
        ctx.info.update(solutions=len(sols), abstained=sum(1 for s in sols if s.answer is None))

    def stage_vote(self, ctx: StageContext) -> None:
        proposals = [p for p in self.read(ctx.iteration, "propose", Proposal) if p.valid]
        sols = self.read(ctx.iteration, "solve", Solution)
        by_pid: dict[str, list[Solution]] = {}
        for s in sols:
            by_pid.setdefault(s.proposal_id, []).append(s)
        votes = [vote(p, by_pid.get(p.id, [])) for p in proposals]
        ctx.out.extend(votes)
        checkable = [v for v in votes if v.checkable]
        ctx.info.update(
            questions=len(votes),
            no_majority=sum(1 for v in votes if v.no_majority),
            mean_agreement=round(sum(v.agreement for v in votes) / len(votes), 4) if votes else None,
            checkable=len(checkable),
            majority_right=sum(1 for v in checkable if v.majority_correct),
        )

    def stage_build(self, ctx: StageContext) -> None:
        c = self.config
        built = build_examples(
            self.read(ctx.iteration, "propose", Proposal),
            self.read(ctx.iteration, "solve", Solution),
            self.read(ctx.iteration, "vote", Vote),
            c.reward,
            c.min_agreement,
            c.keep_per_question,
            c.train_proposer,
            c.drop_truncated,
            seed=self.seed_for("build", ctx.iteration),
        )
        ctx.out.extend(built.examples)
        if built.examples:
            save_parquet(sft_rows(built.examples), ctx.data_path("sft"))
        ctx.info.update(built.counts)

    def stage_train(self, ctx: StageContext) -> None:
        self.train_or_carry(ctx, "sft", ctx.data_path("sft"), self.config.train)

    def stage_evaluate(self, ctx: StageContext) -> None:
        c = self.config
        spec = self.model_after(ctx.iteration)
        model = self.load(spec)
        results = evaluate_heldout(
            model,
            self.eval_tasks(),
            k=c.consistency_samples,
            temperature=c.temperature,
            top_p=c.top_p,
            max_new_tokens=c.eval_max_new_tokens,
            seed=self.seed_for("eval-consistency"),
        )
        ctx.out.extend(results)
        ms = heldout_measures(results)
        info: dict[str, float | int | str | None] = {}
        if ctx.iteration > 0:
            info.update(
                self.stage_infos(
                    ctx.iteration,
                    ["valid", "checkable", "mean_agreement", "examples", "steps", "train_loss"],
                )
            )
            props = self.read(ctx.iteration, "propose", Proposal)
            votes = [v for v in self.read(ctx.iteration, "vote", Vote) if v.checkable]
            info["proposal_validity"] = _ci_text([p.valid for p in props], self.seed_for("ci", 1))
            info["checkable_majority_right"] = _ci_text(
                [bool(v.majority_correct) for v in votes], self.seed_for("ci", 2)
            )
        ctx.info["heldout_correct"] = sum(1 for r in results if r.greedy_ok)
        self.meter.record(ctx.iteration, spec, ms, info=info, gap=("self_consistency", "heldout_accuracy"))


def solve(
    model: LanguageModel, proposals: Sequence[Proposal], n: int, c: GeneratedDataConfig, seed: int
) -> list[Solution]:
    """`n` sampled answers per question, one batched call; request i gets seed `seed + i`."""
    sampling = SamplingParams(temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens)
    samples = sample_n(model, [p.question + ANSWER_SUFFIX for p in proposals], n, sampling, seed)
    sols = []
    for p, outs in zip(proposals, samples, strict=True):
        for j, o in enumerate(outs):
            sols.append(
                Solution(
                    proposal_id=p.id,
                    question=p.question,
                    sample=j,
                    response=o.text,
                    completion_tokens=o.completion_tokens,
                    finish_reason=o.finish_reason,
                    error=o.error,
                    answer=None if o.error else final_number(o.text),
                )
            )
    return sols
