"""SPIN, Self-Play fine-tuning (Chen et al., 2024): the model learns to tell reference answers from
its own, against its previous self.

Per iteration t:
  generate  the previous iterate answers every training prompt (one batched, seeded call)
  build     DPO pairs: chosen = the reference response, rejected = the model's own response;
            pairs whose own response equals the reference, is empty, or failed are dropped and COUNTED
  train     TRL DPO with the sigmoid loss, which is exactly SPIN's logistic objective; with LoRA the
            reference model is the adapter-off base, i.e. the previous iterate, as in the paper
  evaluate  truth meter: held-out verifier pass rate (instructions on held-out topics, arithmetic),
            the mean log-probability per token of HELD-OUT reference answers (does the model move
            toward the reference distribution on prompts it never trained on?), self-reward, the
            self-judge's agreement with the verifier, judge-benchmark accuracy, length and the gap.

`arm: sft` is the control: the same prompts and references, plain SFT on the references, so a
gain of the `spin` arm over it can be credited to self-play rather than to the reference data.

The default reference set is built by code from `selflab.tasks` (instructions, arithmetic, word
problems, facts; every reference verified): training prompts from the TRAINING side of each
family's entity split, the held-out likelihood references from the HELD-OUT side, so no topic,
country or item kind (and no sentence) of a held-out reference was ever trained on. A user file
(`data`) is split by its rows' `group` field (else by prompt).
"""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from selflab.errors import ConfigError
from selflab.loops.base import Loop, StageContext, register_loop
from selflab.loops.evaluation import EvalConfig, evaluate_standard, heldout_sets
from selflab.loops.measures import Answer, sample_answers_on
from selflab.loops.truth_meter import Measurement
from selflab.models.types import SamplingParams, user
from selflab.tasks import Task
from selflab.tasks.splits import content_sentences, split_tasks
from selflab.training import PreferencePair, SFTExample, TrainConfig, dpo_rows, save_parquet, sft_rows

# (family, share of the references, held-out fraction of its entity split); the loop replaces the
# instruction fraction by its `heldout_topic_fraction` and raises the others to at least it, the
# fraction its held-out panel (topics, judge benchmark) uses: otherwise it trains on held-out items
REFERENCE_MIX = (
    ("instructions", 0.4, 0.3),
    ("arithmetic", 0.2, 0.5),
    ("word_problems", 0.2, 0.5),
    ("facts", 0.2, 0.5),
)


class ReferenceExample(BaseModel):
    """A prompt and a known-good answer (the SFT data SPIN starts from)."""

    id: str
    prompt: str
    reference: str
    kind: str = ""
    group: str = ""


class SPINConfig(EvalConfig):
    arm: Literal["spin", "sft"] = Field(
        "spin", description="spin: references vs own answers (DPO); sft: the control, SFT on references"
    )
    data: str | None = Field(
        None, description="JSONL of {id, prompt, reference[, group]}; None: built from selflab.tasks"
    )
    train_prompts: int = Field(48, ge=1, description="training prompts (the same set every iteration)")
    heldout_references: int = Field(32, ge=1, description="held-out references for the likelihood meter")
    heldout_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="user data only: share of groups kept for evaluation"
    )
    temperature: float = Field(0.7, ge=0.0)
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    max_new_tokens: int = Field(96, ge=8)
    judge_samples: int = Field(1, ge=1)
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(lora=True, learning_rate=5e-5, epochs=2, batch_size=4, beta=0.1)
    )


class SPINDrop(BaseModel):
    id: str
    reason: str


# -- the reference set -----------------------------------------------------------------------------


def task_references(
    n: int,
    seed: int,
    heldout: bool,
    exclude: set[str] = frozenset(),  # type: ignore[assignment]
    topic_fraction: float | None = None,
) -> list[ReferenceExample]:
    """`n` verified task references mixed over `REFERENCE_MIX`, from one side of each family's
    entity split (families interleaved, so any prefix keeps the mix), leaving out any whose
    content sentences are in `exclude` (the same computation can appear in two families).
    `topic_fraction` is the held-out evaluation's fraction (its topics and its judge benchmark's
    entities): it replaces the instructions' fraction and raises the others' to at least it."""
    sizes = [int(n * share) for _, share, _ in REFERENCE_MIX]
    for i in range(n - sum(sizes)):
        sizes[i % len(sizes)] += 1
    per: list[list[ReferenceExample]] = []
    for (family, _, frac), m in zip(REFERENCE_MIX, sizes, strict=True):
        if topic_fraction is not None:  # never train on what the panel holds out at its fraction
            frac = topic_fraction if family == "instructions" else max(frac, topic_fraction)
        tasks = split_tasks(family, 2 * m + 8, seed + len(per), heldout, frac) if m else []
        refs = [
            ReferenceExample(id=t.id, prompt=t.prompt, reference=t.reference, kind=t.kind)
            for t in tasks
            if t.verify(t.reference).ok and not content_sentences(t) & exclude
        ]
        per.append(refs[:m])
    mixed = [r for group in zip(*per, strict=False) for r in group]
    mixed += [r for group in per for r in group[len(min(per, key=len)) :]]
    return mixed[:n]


def _ref_sentences(r: ReferenceExample) -> set[str]:
    kind = r.kind if r.kind in ("arithmetic", "word_problem", "fact", "instruction") else "instruction"
    return content_sentences(
        Task(id=r.id, kind=kind, prompt=r.prompt, reference=r.reference, verifier="none")
    )


def load_references(path: str) -> list[ReferenceExample]:
    """A user JSONL file of `prompt` and `reference` (or `response`), optional `id` and `group`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"SPIN data file {path} does not exist", "check the `data` path in the config")
    out = []
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ref = row.get("reference", row.get("response"))
            if not isinstance(row.get("prompt"), str) or not isinstance(ref, str) or not ref.strip():
                raise ValueError("needs string `prompt` and `reference`")
        except (json.JSONDecodeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"{path}:{n} is not a valid reference row ({exc})", "fix or remove that line"
            ) from exc
        out.append(
            ReferenceExample(
                id=str(row.get("id", f"ref-{n}")),
                prompt=row["prompt"],
                reference=ref,
                kind=str(row.get("kind", "")),
                group=str(row.get("group", "")),
            )
        )
    if len(out) < 4:
        raise ConfigError(f"{path} holds only {len(out)} reference rows", "give SPIN at least a few dozen")
    return out


def split_references(
    rows: list[ReferenceExample], fraction: float
) -> tuple[list[ReferenceExample], list[ReferenceExample]]:
    """(train, held-out) by a hash of each row's group (its prompt when it has none)."""
    train, held = [], []
    for r in rows:
        key = r.group or r.prompt
        h = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
        (held if h < fraction else train).append(r)
    return train, held


def spin_pairs(
    refs: list[ReferenceExample], own: list[Answer]
) -> tuple[list[PreferencePair], list[SPINDrop]]:
    """SPIN pairs (reference chosen, own answer rejected); identical, empty or failed own answers
    are dropped with the reason."""
    pairs, drops = [], []
    for r, a in zip(refs, own, strict=True):
        if a.error:
            drops.append(SPINDrop(id=r.id, reason="generation_error"))
        elif not a.response.strip():
            drops.append(SPINDrop(id=r.id, reason="empty"))
        elif a.response.strip() == r.reference.strip():
            drops.append(SPINDrop(id=r.id, reason="identical_to_reference"))
        else:
            pairs.append(
                PreferencePair(
                    prompt=[user(r.prompt)], chosen=r.reference, rejected=a.response, source="spin", id=r.id
                )
            )
    return pairs, drops


def reference_logprob(model: object, refs: list[ReferenceExample]) -> Measurement:
    """Mean log-probability per token of each held-out reference given its prompt (chat format)."""
    vals: list[float | bool | None] = []
    tok = getattr(model, "tokenizer", None)
    for r in refs:
        try:
            lp = model.score([user(r.prompt)], [r.reference])[0]  # type: ignore[attr-defined]
        except Exception:  # noqa: BLE001 - a backend without scoring yields a missing value, not a crash
            vals.append(None)
            continue
        n = (
            len(tok(r.reference, add_special_tokens=False)["input_ids"])
            if tok is not None
            else len(r.reference.split())
        )
        vals.append(lp / max(1, n))
    return Measurement(
        name="heldout_reference_logprob",
        kind="objective",
        values=vals,
        ids=[r.id for r in refs],
        description="mean log-prob per token of held-out reference answers (higher = closer to the references)",
    )


@register_loop
class SPINLoop(Loop):
    name = "spin"
    description = "SPIN self-play fine-tuning: references chosen vs own previous answers rejected (DPO)"
    Config = SPINConfig
    baseline_stages = ("evaluate",)
    stages = ("generate", "build", "train", "evaluate")
    config: SPINConfig

    def references(self) -> tuple[list[ReferenceExample], list[ReferenceExample]]:
        """(training references, held-out references), fixed for the run; never fewer than asked."""
        c = self.config
        if c.data is None:
            frac = c.heldout_topic_fraction  # the evaluation's topic split, never a fixed 0.3
            held = task_references(
                c.heldout_references, self.seed_for("spin-heldout"), True, topic_fraction=frac
            )
            sets = heldout_sets(self.seed_for("eval"), self.seed_for("control"), c)
            evaluated = [*sets.values()]
            seen = {s for ts in evaluated for t in ts for s in content_sentences(t)}
            seen |= {s.lower() for r in held for s in _ref_sentences(r)}
            train = task_references(c.train_prompts, self.seed_for("spin-train"), False, seen, frac)
        else:
            train, held = split_references(load_references(c.data), c.heldout_fraction)
            train, held = train[: c.train_prompts], held[: c.heldout_references]
        if len(train) < c.train_prompts or len(held) < c.heldout_references:
            raise ConfigError(
                f"SPIN has {len(train)} training and {len(held)} held-out references, "
                f"but the config asks for {c.train_prompts} and {c.heldout_references}",
                "ask for fewer, or give a larger data file",
            )
        return train, held

    def stage_generate(self, ctx: StageContext) -> None:
        c = self.config
        refs, _ = self.references()
        if c.arm == "sft":
            ctx.info["skipped"] = "sft control arm: no own answers needed"
            return
        tasks = [
            Task(id=r.id, kind="instruction", prompt=r.prompt, reference=r.reference, verifier="none")
            for r in refs
        ]
        sampling = SamplingParams(temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens)
        answers = sample_answers_on(
            self.executor,
            self.policy_spec(ctx.iteration),
            tasks,
            1,
            sampling,
            self.seed_for("gen", ctx.iteration),
            load=self.load,
        )
        ctx.out.extend(answers)
        ctx.info.update(answers=len(answers), tokens=sum(a.completion_tokens for a in answers))

    def stage_build(self, ctx: StageContext) -> None:
        refs, _ = self.references()
        if self.config.arm == "sft":  # the control arm: the references themselves, as SFT
            examples = [
                SFTExample(prompt=[user(r.prompt)], response=r.reference, source="reference", id=r.id)
                for r in refs
            ]
            ctx.out.extend(examples)
            ctx.info["examples"] = len(examples)
            save_parquet(sft_rows(examples), ctx.data_path("sft"))
            return
        pairs, drops = spin_pairs(refs, self.read(ctx.iteration, "generate", Answer))
        ctx.out.extend(pairs)
        ctx.info["pairs"] = len(pairs)
        for reason in ("generation_error", "empty", "identical_to_reference"):
            ctx.info[f"dropped_{reason}"] = sum(1 for d in drops if d.reason == reason)
        if pairs:
            save_parquet(dpo_rows(pairs), ctx.data_path("dpo"))

    def stage_train(self, ctx: StageContext) -> None:
        if self.config.arm == "sft":
            self.train_or_carry(ctx, "sft", ctx.data_path("sft"), self.config.train)
            return
        cfg = self.config.train.model_copy(update={"dpo_loss": "sigmoid"})  # SPIN's logistic loss
        self.train_or_carry(ctx, "dpo", ctx.data_path("dpo"), cfg)

    def stage_evaluate(self, ctx: StageContext) -> None:
        spec = self.model_after(ctx.iteration)
        ms = evaluate_standard(self, ctx, self.config)
        _, held = self.references()
        lp = reference_logprob(self.load(spec), held)
        ms.insert(2, lp)
        info = self.stage_infos(
            ctx.iteration, ("pairs", "examples", "dropped_identical_to_reference", "steps", "train_loss")
        )
        info["arm"] = self.config.arm
        vals = [v for v in lp.values if v is not None]
        if vals:
            info["mean_heldout_reference_logprob"] = round(statistics.fmean(vals), 4)  # type: ignore[arg-type]
        self.meter.record(ctx.iteration, spec, ms, info=info, gap=("self_reward", "heldout_pass_rate"))
