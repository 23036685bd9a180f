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

import random
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from selflab.loops.base import Loop, LoopConfig, StageContext, register_loop
from selflab.loops.judging import judge_answers
from selflab.loops.measures import Answer, sample_answers, sample_answers_on
from selflab.loops.truth_meter import Measurement
from selflab.models.types import GenerationRequest, LanguageModel, Message, SamplingParams, assistant, user
from selflab.tasks import Task
from selflab.tasks.splits import family_tasks
from selflab.training import PreferencePair, SFTExample, TrainConfig, dpo_rows, save_parquet, sft_rows

Family = Literal["arithmetic", "word_problems", "instructions", "facts"]

CRITIQUE_PROMPT = (
    "Review your answer above. Check each step and the final result. If there is a mistake, say "
    "which step is wrong and why. Be brief."
)
REVISE_AFTER_CRITIQUE = (
    "Using your review, write the corrected answer to the original question. If your first answer "
    "was right, repeat it. End with the final answer."
)
SCORE_RETRY = (
    "There might be an error in the answer above. Check it carefully and give your final answer "
    "again, ending with the final answer."
)


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


class Refinement(BaseModel):
    """One task's first attempt, the model's critique of it, the revision, and the verdicts."""

    task_id: str
    prompt: str
    sample: int = 0
    first: str
    first_tokens: int = 0
    first_finish: str = "stop"
    critique: str = ""
    second: str = ""
    second_tokens: int = 0
    second_finish: str = "stop"
    first_ok: bool | None = None
    second_ok: bool | None = None
    first_reason: str = ""
    second_reason: str = ""
    first_score: float | None = None
    second_score: float | None = None
    error: str | None = None

    @property
    def outcome(self) -> str:
        """fixed / broke / kept / stuck by the verifier (unknown if a verdict is missing)."""
        if self.first_ok is None or self.second_ok is None:
            return "unknown"
        return {
            (False, True): "fixed",
            (True, False): "broke",
            (True, True): "kept",
            (False, False): "stuck",
        }[(self.first_ok, self.second_ok)]


# -- prompts -------------------------------------------------------------------------------------


def critique_messages(r: Refinement) -> list[Message]:
    return [user(r.prompt), assistant(r.first), user(CRITIQUE_PROMPT)]


def revise_messages(r: Refinement, mode: str) -> list[Message]:
    """The chat that precedes the second attempt (also the prompt of the SCoRe training data)."""
    if mode in ("retry", "score"):
        return [user(r.prompt), assistant(r.first), user(SCORE_RETRY)]
    return [*critique_messages(r), assistant(r.critique), user(REVISE_AFTER_CRITIQUE)]


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


# -- data construction ---------------------------------------------------------------------------


class RefineData(BaseModel):
    sft: list[SFTExample] = Field(default_factory=list)
    pairs: list[PreferencePair] = Field(default_factory=list)
    counts: dict[str, int] = Field(default_factory=dict)


def improved(r: Refinement, selector: str) -> str:
    """'better' / 'worse' / 'same' / 'tie' / 'unparsable' for the second attempt vs the first."""
    if selector == "judge":
        if r.first_score is None or r.second_score is None:
            return "unparsable"
        if r.second_score > r.first_score:
            return "better"
        if r.second_score < r.first_score:
            return "worse"
        return "tie"
    o = r.outcome
    return {"fixed": "better", "broke": "worse", "kept": "same", "stuck": "same"}.get(o, "unparsable")


def build_refine_data(
    refs: Sequence[Refinement],
    mode: str,
    selector: str = "verifier",
    data: str = "transcript",
    keep_correct: bool = False,
    max_kept_fraction: float = 0.5,
    drop_truncated: bool = True,
    seed: int = 0,
) -> RefineData:
    """Training data from (first, second) attempts. Rules (each drop is counted):
    - an attempt with a generation error, an empty second attempt, or (with `drop_truncated`) a
      truncated second attempt is dropped;
    - `better` (verifier: wrong -> right; judge: higher self-score) -> SFT (SELF: task -> revision;
      SCoRe: transcript -> revision) and a DPO pair on the transcript: revision over the first
      attempt repeated; a revision identical to the first attempt is no improvement (dropped);
    - `worse` (verifier: right -> wrong) -> a DPO pair: the first attempt repeated over the revision;
    - `same` with both right (verifier) -> with `keep_correct`, a SCoRe transcript that keeps the
      answer, capped at `max_kept_fraction` of the SFT data;
    - ties and unparsable judgments (judge selector) are dropped and counted.
    """
    c: Counter[str] = Counter()
    sft: list[SFTExample] = []
    kept: list[SFTExample] = []
    pairs: list[PreferencePair] = []
    for r in refs:
        c["refinements"] += 1
        c[f"outcome_{r.outcome}"] += 1
        if r.error:
            c["dropped_generation_error"] += 1
            continue
        if not r.second.strip():
            c["dropped_empty_revision"] += 1
            continue
        if drop_truncated and r.second_finish == "length":
            c["dropped_truncated_revision"] += 1
            continue
        verdict = improved(r, selector)
        c[f"verdict_{verdict}"] += 1
        rid = f"{r.task_id}#{r.sample}"
        transcript = revise_messages(r, mode)
        if verdict == "better":
            if r.second.strip() == r.first.strip():
                c["dropped_identical_revision"] += 1
                continue
            if data in ("self", "both"):
                sft.append(
                    SFTExample(prompt=[user(r.prompt)], response=r.second, source="self-refined", id=rid)
                )
            if data in ("transcript", "score", "both"):
                sft.append(
                    SFTExample(prompt=transcript, response=r.second, source="two-attempt", id=rid + ":t")
                )
            pairs.append(
                PreferencePair(
                    prompt=transcript,
                    chosen=r.second,
                    rejected=r.first,
                    chosen_score=r.second_score if selector == "judge" else 1.0,
                    rejected_score=r.first_score if selector == "judge" else 0.0,
                    source="fixed-over-unchanged",
                    id=rid,
                )
            )
        elif verdict == "worse":
            if r.second.strip() == r.first.strip():
                c["dropped_identical_revision"] += 1
                continue
            pairs.append(
                PreferencePair(
                    prompt=transcript,
                    chosen=r.first,
                    rejected=r.second,
                    chosen_score=r.first_score if selector == "judge" else 1.0,
                    rejected_score=r.second_score if selector == "judge" else 0.0,
                    source="keep-over-broken",
                    id=rid,
                )
            )
        elif (
            verdict == "same"
            and r.first_ok
            and r.second_ok
            and keep_correct
            and data in ("transcript", "score", "both")
        ):
            kept.append(
                SFTExample(prompt=transcript, response=r.second, source="kept-correct", id=rid + ":k")
            )
    rng = random.Random(seed)
    if kept:
        # right -> right transcripts are plentiful and easy; cap their share so fixes dominate
        cap = (
            len(kept)
            if max_kept_fraction >= 1.0
            else int(max_kept_fraction * len(sft) / (1 - max_kept_fraction))
        )
        rng.shuffle(kept)
        c["dropped_kept_over_cap"] = max(0, len(kept) - cap)
        kept = kept[:cap]
    sft += kept
    rng.shuffle(sft)
    rng.shuffle(pairs)
    c["sft_examples"] = len(sft)
    c["pairs"] = len(pairs)
    return RefineData(sft=sft, pairs=pairs, counts=dict(sorted(c.items())))


# -- measurements --------------------------------------------------------------------------------


def refine_measures(refs: Sequence[Refinement], with_self_reward: bool) -> list[Measurement]:
    """The truth meter's view of a held-out evaluation (items paired by task id across iterations)."""
    ids = [f"{r.task_id}#{r.sample}" for r in refs]
    ms = [
        Measurement(
            name="first_attempt_accuracy",
            kind="objective",
            values=[bool(r.first_ok) for r in refs],
            ids=ids,
            description="verifier accuracy of the first attempt, greedy, held-out tasks",
        ),
        Measurement(
            name="second_attempt_accuracy",
            kind="objective",
            values=[bool(r.second_ok) for r in refs],
            ids=ids,
            description="verifier accuracy after self-critique and revision",
            primary=True,
        ),
        Measurement(
            name="fixed_rate",
            kind="objective",
            values=[r.outcome == "fixed" for r in refs],
            ids=ids,
            description="wrong first attempt made right by the revision (share of all tasks)",
        ),
        Measurement(
            name="broke_rate",
            kind="objective",
            values=[r.outcome == "broke" for r in refs],
            ids=ids,
            higher_is_better=False,
            description="right first attempt made wrong by the revision (share of all tasks)",
        ),
        Measurement(
            name="delta_t1_t2",
            kind="objective",
            values=[float(bool(r.second_ok)) - float(bool(r.first_ok)) for r in refs],
            ids=ids,
            description="per task: second-attempt minus first-attempt correctness (SCoRe's Δ(t1,t2))",
        ),
    ]
    if with_self_reward:
        ms.append(
            Measurement(
                name="self_reward",
                kind="self_reward",
                values=[r.second_score for r in refs],
                ids=ids,
                description="own rubric score of the final (revised) answer, [0, 1]; unparsable = missing",
            )
        )
    ms.append(
        Measurement(
            name="response_tokens",
            kind="drift",
            values=[float(r.second_tokens) for r in refs],
            ids=ids,
            higher_is_better=False,
            description="tokens of the final (revised) answer (length drift)",
        )
    )
    ms.append(
        Measurement(
            name="first_response_tokens",
            kind="drift",
            values=[float(r.first_tokens) for r in refs],
            ids=ids,
            higher_is_better=False,
            description="tokens of the first attempt",
        )
    )
    return ms


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
        model = self.load(self.policy_spec(ctx.iteration))
        refs = run_revision(
            model, refs, c.mode, self._sampling(c.max_new_tokens), self.seed_for("revise", ctx.iteration)
        )
        ctx.out.extend(refs)
        ctx.info["tokens"] = sum(r.second_tokens for r in refs)

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
