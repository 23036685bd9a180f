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

The reference set ships with the package (`spin_references.jsonl`): answers written by code from
`selflab.tasks` references, each checked by its task's verifier when the file was built, all from
the TRAINING side of the task splits, so the held-out truth-meter tasks stay unseen.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, Field

from selflab.errors import ConfigError
from selflab.loops.base import Loop, StageContext, register_loop
from selflab.loops.measures import Answer, sample_answers
from selflab.loops.self_rewarding import (
    JudgedLoopConfig,
    evaluate_policy,
    safe_split,
    stage_infos,
    train_or_carry,
)
from selflab.loops.truth_meter import Measurement
from selflab.models.types import SamplingParams, user
from selflab.tasks import Task
from selflab.training import PreferencePair, TrainConfig, dpo_rows, save_parquet

REFERENCE_FILE = "spin_references.jsonl"


class ReferenceExample(BaseModel):
    """A prompt and a known-good answer (the SFT data SPIN starts from)."""

    id: str
    prompt: str
    reference: str
    kind: str = ""


class SPINConfig(JudgedLoopConfig):
    data: str | None = Field(
        None, description="JSONL of {id, prompt, reference}; None: the shipped reference set"
    )
    train_prompts: int = Field(48, ge=1, description="training prompts (the same set every iteration)")
    heldout_references: int = Field(32, ge=1, description="held-out references for the likelihood meter")
    heldout_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of the set kept for evaluation")
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


def build_reference_set(seed: int = 0) -> list[dict]:
    """The shipped file's rows: task references (instructions on training topics, arithmetic and
    word problems on the training side of their splits, country facts), each verified."""
    rows = []
    for family, n, frac in (
        ("instructions", 70, 0.3),
        ("arithmetic", 40, 0.5),
        ("word_problems", 30, 0.5),
        ("facts", 30, 0.5),
    ):
        for t in safe_split(family, n, seed + 11, False, frac):
            if not t.verify(t.reference).ok:
                continue
            rows.append(
                {
                    "id": t.id,
                    "kind": t.kind,
                    "prompt": t.prompt,
                    "reference": t.reference,
                    "task": t.model_dump(mode="json"),
                }
            )
    return rows


def load_references(path: str | None = None) -> list[ReferenceExample]:
    """The shipped reference set, or a user JSONL file (`prompt` and `reference` or `response`)."""
    if path is None:
        text = resources.files("selflab.loops").joinpath(REFERENCE_FILE).read_text("utf-8")
        where = REFERENCE_FILE
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"SPIN data file {path} does not exist", "check the `data` path in the config")
        text, where = p.read_text(encoding="utf-8"), str(p)
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ref = row.get("reference", row.get("response"))
            if not isinstance(row.get("prompt"), str) or not isinstance(ref, str) or not ref.strip():
                raise ValueError("needs string `prompt` and `reference`")
        except (json.JSONDecodeError, ValueError, AttributeError) as exc:
            raise ConfigError(
                f"{where}:{n} is not a valid reference row ({exc})", "fix or remove that line"
            ) from exc
        out.append(
            ReferenceExample(
                id=str(row.get("id", f"ref-{n}")),
                prompt=row["prompt"],
                reference=ref,
                kind=str(row.get("kind", "")),
            )
        )
    if len(out) < 4:
        raise ConfigError(f"{where} holds only {len(out)} reference rows", "give SPIN at least a few dozen")
    return out


def split_references(
    rows: list[ReferenceExample], fraction: float
) -> tuple[list[ReferenceExample], list[ReferenceExample]]:
    """(train, held-out) by a hash of the prompt: stable across runs and iterations."""
    train, held = [], []
    for r in rows:
        h = int.from_bytes(hashlib.sha256(r.prompt.encode()).digest()[:4], "big") / 2**32
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
        c = self.config
        train, held = split_references(load_references(c.data), c.heldout_fraction)
        if not train or not held:
            raise ConfigError(
                "the SPIN reference set is too small to split", "give more rows or change heldout_fraction"
            )
        return train[: c.train_prompts], held[: c.heldout_references]

    def stage_generate(self, ctx: StageContext) -> None:
        c = self.config
        refs, _ = self.references()
        model = self.load(self.policy_spec(ctx.iteration))
        tasks = [
            Task(id=r.id, kind="instruction", prompt=r.prompt, reference=r.reference, verifier="none")
            for r in refs
        ]
        sampling = SamplingParams(temperature=c.temperature, top_p=c.top_p, max_new_tokens=c.max_new_tokens)
        answers = sample_answers(model, tasks, 1, sampling, self.seed_for("gen", ctx.iteration))
        ctx.out.extend(answers)
        ctx.info.update(answers=len(answers), tokens=sum(a.completion_tokens for a in answers))

    def stage_build(self, ctx: StageContext) -> None:
        refs, _ = self.references()
        pairs, drops = spin_pairs(refs, self.read(ctx.iteration, "generate", Answer))
        ctx.out.extend(pairs)
        ctx.info["pairs"] = len(pairs)
        for reason in ("generation_error", "empty", "identical_to_reference"):
            ctx.info[f"dropped_{reason}"] = sum(1 for d in drops if d.reason == reason)
        if pairs:
            save_parquet(dpo_rows(pairs), ctx.data_path("dpo"))

    def stage_train(self, ctx: StageContext) -> None:
        cfg = self.config.train.model_copy(update={"dpo_loss": "sigmoid"})  # SPIN's logistic loss
        train_or_carry(self, ctx, "dpo", ctx.data_path("dpo"), cfg)

    def stage_evaluate(self, ctx: StageContext) -> None:
        spec = self.model_after(ctx.iteration)
        ms, records = evaluate_policy(self, ctx, self.config, spec)
        _, held = self.references()
        model = self.load(spec)
        lp = reference_logprob(model, held)
        ms.insert(2, lp)
        ctx.out.extend(records)
        info = stage_infos(
            self, ctx.iteration, ("pairs", "dropped_identical_to_reference", "steps", "train_loss")
        )
        vals = [v for v in lp.values if v is not None]
        if vals:
            info["mean_heldout_reference_logprob"] = round(statistics.fmean(vals), 4)  # type: ignore[arg-type]
        self.meter.record(ctx.iteration, spec, ms, info=info, gap=("self_reward", "heldout_pass_rate"))
