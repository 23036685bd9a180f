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
  evaluate  the truth meter on things the loop did not optimise: greedy answers to held-out
            instruction tasks (held-out topics) and arithmetic checked by code, the model as a judge
            on held-out judge-benchmark items of known correctness, self-reward, self-judge/verifier
            agreement, length, and the self-reward minus verifier gap; bootstrap CIs, paired tests.

This module also holds the pieces meta-rewarding, SPIN and judge distillation share (per-judgment
rubric judging, judge-benchmark measures, the common held-out evaluation, train-or-carry).
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import statistics
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from selflab.loops.base import Loop, LoopConfig, StageContext, register_loop
from selflab.loops.measures import (
    Answer,
    judge_agreement,
    length,
    pass_rate,
    sample_answers,
    self_reward,
    verify_answers,
)
from selflab.loops.truth_meter import Measurement
from selflab.loops.verified_sft import split_tasks
from selflab.models.types import GenerationRequest, LanguageModel, SamplingParams, user
from selflab.tasks import Task
from selflab.training import (
    PairCounts,
    PreferencePair,
    ScoredResponse,
    TrainConfig,
    best_vs_worst_pairs,
    dpo_rows,
    save_parquet,
    train,
)

# -- configs ---------------------------------------------------------------------------------------


class JudgedLoopConfig(LoopConfig):
    """Settings shared by the loops whose model judges itself: the self-judge and the truth meter."""

    judge_template: str = Field("rubric_additive", description="rubric template of the self-judge")
    judge_samples: int = Field(3, ge=1, description="k judgments per response, averaged (paper: 3)")
    judge_temperature: float = Field(0.7, ge=0.0, description="used when judge_samples > 1")
    judge_max_new_tokens: int = Field(4, ge=1)
    judge_reasoning: bool = Field(
        False, description="let the judge explain before its score (slow; a 135M model rarely parses)"
    )
    # truth meter
    eval_tasks: int = Field(40, ge=2, description="held-out instruction tasks (held-out topics)")
    control_tasks: int = Field(20, ge=0, description="held-out arithmetic tasks (another family)")
    heldout_topic_fraction: float = Field(0.3, gt=0.0, lt=1.0)
    eval_max_new_tokens: int = Field(64, ge=8)
    bench_items: int = Field(16, ge=0, description="held-out judge-benchmark items (3 candidates each)")


class SelfRewardingConfig(JudgedLoopConfig):
    """Defaults: a small budget that finishes on a 2-core CPU in minutes per iteration."""

    seed_prompts: int = Field(16, ge=1, description="seed instructions per iteration (training topics)")
    new_prompts: int = Field(0, ge=0, description="self-generated new instructions per iteration (0: off)")
    new_prompt_attempts: float = Field(2.0, ge=1.0, description="requests per wanted new prompt")
    few_shot: int = Field(4, ge=1, description="seed examples shown when writing a new instruction")
    prompt_max_new_tokens: int = Field(40, ge=8)
    samples_per_prompt: int = Field(4, ge=2)
    temperature: float = Field(0.8, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(64, ge=8)
    min_margin: float = Field(0.0, ge=0.0, description="best - worst score must exceed this (else a tie)")
    drop_truncated: bool = Field(False, description="leave answers cut off by max_new_tokens out of pairs")
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


class JudgedAnswer(Answer):
    """An answer with each of its k judgments kept (raw text and score on the judge's scale);
    `self_score` is their mean over parsable ones, normalised to [0, 1]."""

    judge_prompt: str = ""
    judgments: list[str] = Field(default_factory=list)
    scores: list[float | None] = Field(default_factory=list)
    scale: tuple[float, float] = (0.0, 5.0)


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


def select_instructions(
    raws: Sequence[str], existing: Sequence[str], wanted: int
) -> tuple[list[tuple[str, str]], list[PromptRejection]]:
    """Parse, deduplicate (against `existing` and each other, case and punctuation folded) and
    keep the first `wanted`; returns ((instruction, raw) kept, rejections with reasons)."""
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
        if len(kept) >= wanted:
            rejected.append(PromptRejection(raw=raw[:300], reason="surplus"))
            continue
        seen.add(key)
        kept.append((text, raw))
    return kept, rejected


# -- judging, one record per judgment --------------------------------------------------------------


_ANSWER_FIELDS = set(Answer.model_fields) - {"self_score", "judge_raw", "judge_error"}


def judge_each(
    model: LanguageModel,
    answers: Sequence[Answer],
    samples: int,
    seed: int,
    max_new_tokens: int,
    template: str = "rubric_additive",
    temperature: float = 0.7,
    reasoning: bool = False,
) -> list[JudgedAnswer]:
    """Grade every answer `samples` times with the rubric judge in ONE generate call, keeping each
    judgment. With one sample the judge is greedy; with several it samples (seeded per judgment)."""
    from selflab.judges.rubric import RubricJudge
    from selflab.judges.types import PointwiseItem

    temp = 0.0 if samples == 1 else temperature
    judge = RubricJudge(
        model,
        template=template,
        sampling=SamplingParams(temperature=temp, max_new_tokens=max_new_tokens),
        samples=samples,
        seed=seed,
        direct=not reasoning,
    )
    lo, hi = judge.scale
    items = [
        PointwiseItem(prompt=a.prompt, response=a.response, id=f"{a.task_id}#{a.sample}") for a in answers
    ]
    out = []
    for a, item, j in zip(answers, items, judge.judge(items), strict=True):
        recs = j.details.get("samples") or []
        scores = [None if r.get("value") is None else float(r["value"]) for r in recs]
        mean = None if j.score is None else (float(j.score) - lo) / (hi - lo)
        out.append(
            JudgedAnswer(
                **{k: v for k, v in a.model_dump().items() if k in _ANSWER_FIELDS},
                self_score=mean,
                judge_raw=j.raw[-200:],
                judge_error=j.parse_error,
                judge_prompt=judge.prompt_text(item),
                judgments=[str(r.get("raw", "")) for r in recs],
                scores=scores,
                scale=(lo, hi),
            )
        )
    return out


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
) -> tuple[list[PreferencePair], PairCounts, int]:
    """Self-Rewarding's pair rule on self-scored answers grouped by prompt: highest vs lowest mean
    score; unparsable, ties and duplicate texts dropped and counted (`best_vs_worst_pairs`).
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
        if p is not None:
            pairs.append(p)
    return pairs, counts, truncated


# -- the held-out judge benchmark ------------------------------------------------------------------


class BenchUnit(BaseModel):
    """One judge-benchmark candidate of known (code-verified) correctness."""

    id: str
    item_id: str
    domain: str
    prompt: str
    response: str
    correct: bool


class BenchPair(BaseModel):
    id: str
    a: str  # BenchUnit ids
    b: str
    better: str  # "A" or "B"


def _heldout_hash(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32


def bench_slice(
    n_items: int, fraction: float = 0.3, offset: int = 0
) -> tuple[list[BenchUnit], list[BenchPair]]:
    """`n_items` shipped judge-benchmark items on the held-out side of the topic/prompt split (the
    split the loops' training prompts come from the other side of), domains interleaved; with
    their candidates and pairs. `offset` skips that many held-out items (disjoint slices)."""
    from selflab.evalbench.items import load_items

    if n_items <= 0:
        return [], []
    chosen = []
    for it in load_items():
        key = str(it.task.meta.get("topic") or it.task.prompt)
        if _heldout_hash(key) < fraction:
            chosen.append(it)
    chosen = chosen[offset : offset + n_items]
    units, pairs = [], []
    for it in chosen:
        for c in it.candidates:
            units.append(
                BenchUnit(
                    id=c.id,
                    item_id=it.id,
                    domain=it.domain,
                    prompt=it.task.prompt,
                    response=c.response,
                    correct=c.correct,
                )
            )
        for p in it.pairs:
            pairs.append(BenchPair(id=p.id, a=p.a, b=p.b, better=p.better))
    return units, pairs


class BenchJudgment(BaseModel):
    unit_id: str
    correct: bool
    score: float | None  # normalised to [0, 1]
    raw: str = ""
    parse_error: str | None = None


def judge_bench(
    model: LanguageModel,
    units: Sequence[BenchUnit],
    max_new_tokens: int = 4,
    template: str = "rubric_additive",
    reasoning: bool = False,
) -> list[BenchJudgment]:
    """The model as a greedy rubric judge on benchmark candidates, in one generate call."""
    from selflab.judges.rubric import RubricJudge
    from selflab.judges.types import PointwiseItem

    if not units:
        return []
    judge = RubricJudge(
        model,
        template=template,
        sampling=SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens),
        direct=not reasoning,
    )
    lo, hi = judge.scale
    js = judge.judge([PointwiseItem(prompt=u.prompt, response=u.response, id=u.id) for u in units])
    return [
        BenchJudgment(
            unit_id=u.id,
            correct=u.correct,
            score=None if j.score is None else (float(j.score) - lo) / (hi - lo),
            raw=j.raw[-120:],
            parse_error=j.parse_error,
        )
        for u, j in zip(units, js, strict=True)
    ]


def bench_measures(
    judged: Sequence[BenchJudgment], pairs: Sequence[BenchPair], prefix: str = "judge_bench"
) -> list[Measurement]:
    """Pointwise accuracy (normalised score > 0.5 means "correct", as the evalbench threshold) and
    pair accuracy implied by the scores (higher score on the better candidate = 1, tie = 0.5);
    unparsable = missing, never wrong or right."""
    if not judged:
        return []
    acc: list[float | bool | None] = [
        None if j.score is None else (j.score > 0.5) == j.correct for j in judged
    ]
    by_id = {j.unit_id: j.score for j in judged}
    pair_vals: list[float | bool | None] = []
    for p in pairs:
        sa, sb = by_id.get(p.a), by_id.get(p.b)
        if sa is None or sb is None:
            pair_vals.append(None)
            continue
        good, bad = (sa, sb) if p.better == "A" else (sb, sa)
        pair_vals.append(1.0 if good > bad else 0.5 if good == bad else 0.0)
    out = [
        Measurement(
            name=f"{prefix}_accuracy",
            kind="objective",
            values=acc,
            description="model as rubric judge on held-out benchmark candidates of verified correctness",
        )
    ]
    if pair_vals:
        out.append(
            Measurement(
                name=f"{prefix}_pair_accuracy",
                kind="objective",
                values=pair_vals,
                description="benchmark pairs: better candidate scored higher (tie = 0.5)",
            )
        )
    return out


# -- the common held-out evaluation ----------------------------------------------------------------


def safe_split(family: str, n: int, seed: int, heldout: bool, fraction: float) -> list[Task]:
    """`split_tasks`, retried with the next seed when a task generator trips over its own
    reference check (an upstream bug seen for some seeds of `instruction_tasks`). Deterministic,
    so a resumed run draws the same tasks."""
    last: AssertionError | None = None
    for attempt in range(8):
        try:
            return split_tasks(family, n, seed + attempt, heldout, fraction)  # type: ignore[arg-type]
        except AssertionError as exc:  # noqa: PERF203 - a rare retry
            last = exc
    raise RuntimeError(f"could not draw {n} {family} tasks: {last}")


def heldout_tasks(loop: Loop, cfg: JudgedLoopConfig) -> tuple[list[Task], list[Task]]:
    """Held-out instruction tasks (held-out topics) and held-out arithmetic: fixed for the run."""
    main = safe_split("instructions", cfg.eval_tasks, loop.seed_for("eval"), True, cfg.heldout_topic_fraction)
    control = (
        safe_split("arithmetic", cfg.control_tasks, loop.seed_for("control"), True, 0.5)
        if cfg.control_tasks
        else []
    )
    return main, control


def evaluate_policy(
    loop: Loop, ctx: StageContext, cfg: JudgedLoopConfig, spec: str
) -> tuple[list[Measurement], list[BaseModel]]:
    """The truth meter's measurements that every self-judging loop shares: held-out verifier pass
    rates, self-reward and its agreement with the verifier, judge-benchmark accuracy, length.
    Returns (measurements, records to log)."""
    model = loop.load(spec)
    main_tasks, control_tasks = heldout_tasks(loop, cfg)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=cfg.eval_max_new_tokens)
    answers = verify_answers(
        main_tasks + control_tasks, sample_answers(model, main_tasks + control_tasks, 1, greedy, 0)
    )
    main, ctrl = answers[: len(main_tasks)], answers[len(main_tasks) :]
    judged = judge_each(
        model,
        main,
        1,
        loop.seed_for("eval-judge"),
        cfg.judge_max_new_tokens,
        cfg.judge_template,
        reasoning=cfg.judge_reasoning,
    )
    units, pairs = bench_slice(cfg.bench_items, cfg.heldout_topic_fraction)
    bench = judge_bench(model, units, cfg.judge_max_new_tokens, cfg.judge_template, cfg.judge_reasoning)
    ms = [
        pass_rate(
            "heldout_pass_rate", judged, "verifier pass rate, greedy, instruction tasks on held-out topics"
        )
    ]
    if ctrl:
        ms.append(pass_rate("control_arithmetic_accuracy", ctrl, "held-out arithmetic, checked by code"))
    ms += [self_reward(judged), judge_agreement(judged)]
    ms += bench_measures(bench, pairs)
    ms.append(length(judged))
    return ms, [*judged, *ctrl, *bench]


def stage_infos(loop: Loop, iteration: int, keys: Sequence[str]) -> dict[str, Any]:
    """Selected summary numbers of an iteration's completed stages (for the meter's info line)."""
    info: dict[str, Any] = {}
    for key, st in loop.run.completed_stages().items():
        if key.startswith(f"iter-{iteration}."):
            for k in keys:
                if k in st.info and isinstance(st.info[k], (int, float, str)):
                    info[k] = st.info[k]
    return info


def train_or_carry(
    loop: Loop, ctx: StageContext, method: str, data: Any, cfg: TrainConfig, base: str | None = None
) -> None:
    """Train `method` on the parquet file `data` from `base` (default: the policy of this
    iteration) into the iteration's checkpoint; with no data, copy the base forward so the chain
    of iterations continues (and say so)."""
    from selflab.training import load_rows, resolve_model_path

    base = base or loop.policy_spec(ctx.iteration)
    target = loop.checkpoint_dir(ctx.iteration)
    if not data.exists():
        src = resolve_model_path(base)
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(src, target)
        ctx.info.update(skipped="no training data", steps=0)
        return
    tcfg = cfg.model_copy(update={"seed": loop.seed_for("train", ctx.iteration)})
    result = train(method, base, load_rows(data), target, tcfg)  # type: ignore[arg-type]
    ctx.out.append(result)
    ctx.info.update(
        steps=result.steps,
        train_loss=round(result.train_loss, 4) if result.train_loss is not None else None,
        train_tokens_per_s=round(result.tokens / result.seconds, 1) if result.seconds else None,
    )


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
        return safe_split(
            "instructions", c.seed_prompts, self.seed_for("train", iteration), False, c.heldout_topic_fraction
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
            kept, rejected = select_instructions(raws, [t.prompt for t in seeds], c.new_prompts)
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
                **{f"rejected_{k}": v for k, v in reasons.items()},
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
        model = self.load(self.policy_spec(ctx.iteration))
        sampling = SamplingParams(temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens)
        answers = sample_answers(
            model,
            self._prompt_tasks(ctx.iteration),
            c.samples_per_prompt,
            sampling,
            self.seed_for("gen", ctx.iteration),
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
        judged = judge_each(
            model,
            answers,
            c.judge_samples,
            self.seed_for("judge", ctx.iteration),
            c.judge_max_new_tokens,
            c.judge_template,
            c.judge_temperature,
            c.judge_reasoning,
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
        pairs, counts, truncated = self_reward_pairs(judged, c.min_margin, c.drop_truncated)
        rng = random.Random(self.seed_for("build", ctx.iteration))
        rng.shuffle(pairs)
        ctx.out.extend(pairs)
        ctx.info.update(counts.model_dump())
        ctx.info["dropped_truncated_answers"] = truncated
        if pairs:
            save_parquet(dpo_rows(pairs), ctx.data_path("dpo"))

    def stage_train(self, ctx: StageContext) -> None:
        train_or_carry(self, ctx, "dpo", ctx.data_path("dpo"), self.config.train)

    def stage_evaluate(self, ctx: StageContext) -> None:
        spec = self.model_after(ctx.iteration)
        ms, records = evaluate_policy(self, ctx, self.config, spec)
        ctx.out.extend(records)
        info = stage_infos(
            self,
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
