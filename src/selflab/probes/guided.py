"""Probe-guided generation: sample N answers per verifiable question and pick one by a probe on
the model's own hidden states (best-of-N), against plain sampling, the model's own likelihood and
the rubric judge.

The probe is a *self-knowledge* probe: it is trained on the model's own sampled answers to the
training questions, labelled correct or not by the task's verifier, and read on the answer span
of the (prompt + answer) text. Questions are split by id, so no question used to train the probe
(or to choose its layer) is ever used to evaluate the selection.

Selection methods on each test question:
- `first_sample`: the first of the N samples (plain sampling).
- `random_sample`: expected accuracy of a uniformly random sample (mean over the N).
- `greedy`: the temperature-0 answer.
- `majority`: the most frequent normalised answer text (ties: earliest).
- `likelihood`: highest mean token log-probability (the model's own confidence).
- `probe`: highest probe score.
- `judge`: highest RubricJudge score (the model grading itself with a rubric); unparsed = lowest.
- `oracle`: pass@N, an upper bound for any selector.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from selflab.errors import SelflabError
from selflab.probes.activations import ProbeInput, extract
from selflab.probes.metrics import Metric, auc, mean_ci
from selflab.probes.models import make_probe
from selflab.probes.pipeline import Target

METHODS = ("first_sample", "random_sample", "greedy", "majority", "likelihood", "probe", "judge", "oracle")


class GuidedConfig(BaseModel):
    model: str = Field("smollm2-135m", description="Model spec (local: smollm2-135m or hf:PATH).")
    n_questions: int = Field(150, ge=4, description="Verifiable questions (split into train/test).")
    test_fraction: float = Field(0.4, gt=0.0, lt=1.0, description="Share of the questions held out for test.")
    n_samples: int = Field(5, ge=2, description="Sampled answers per question (N of best-of-N).")
    temperature: float = Field(0.8, gt=0.0, description="Sampling temperature.")
    max_new_tokens: int = Field(32, ge=1, description="Answer length limit.")
    position: str = Field("answer_mean", description="Token position: last, answer_last, answer_mean.")
    probe: str = Field("logistic", description="Probe kind: logistic, mean_diff, mlp.")
    judge: bool = Field(True, description="Also rank with the RubricJudge.")
    seed: int = Field(0, description="Seed for datasets, splits, probes and bootstrap.")
    n_boot: int = Field(1000, ge=50, description="Bootstrap resamples of each interval.")
    batch_size: int = Field(16, ge=1, description="Prompts per forward pass.")


class SampleRecord(BaseModel):
    question_id: str
    split: str
    sample: int  # -1 = greedy
    prompt: str
    answer: str
    correct: bool
    mean_logprob: float | None = None
    probe_score: float | None = None
    judge_score: float | None = None
    judge_error: str | None = None


class GuidedSummary(BaseModel):
    model: str
    n_train_questions: int
    n_test_questions: int
    n_samples: int
    train_sample_accuracy: float
    probe_layer: int | None
    probe_layer_val_auc: float | None
    probe_test_auc: float | None  # AUC of the probe over all test samples (correct vs not)
    accuracy: dict[str, Metric]
    probe_minus_first: Metric | None
    probe_minus_random: Metric | None
    notes: list[str]
    seconds: float


def default_tasks(n: int, seed: int = 0) -> list[Any]:
    """Verifiable questions from `selflab.tasks`: two thirds short factual questions about
    countries, one third arithmetic."""
    from selflab.tasks.arithmetic import arithmetic_tasks
    from selflab.tasks.facts import fact_tasks

    n_arith = n // 3
    kinds = ("capital", "continent", "language", "currency", "population_compare")
    return fact_tasks(n - n_arith, seed=seed, kinds=kinds) + arithmetic_tasks(n_arith, seed=seed)


def question_split(question_id: str, seed: int, test_fraction: float) -> str:
    u = int.from_bytes(hashlib.sha256(f"{seed}|{question_id}".encode()).digest()[:8], "big") / 2**64
    return "test" if u < test_fraction else "train"


def normalise(text: str) -> str:
    """Lower-case words of the first line, for majority voting over free-text answers."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return " ".join(re.findall(r"[a-z0-9]+", first.lower()))


def _mean_logprob(c: Any) -> float | None:
    lp = getattr(c, "token_logprobs", None)
    return float(np.mean(lp)) if lp else None


def _pick(values: Sequence[float | None]) -> int:
    """Index of the largest value, None counting as lowest; ties go to the earliest sample."""
    best, best_v = 0, -np.inf
    for i, v in enumerate(values):
        if v is not None and not np.isnan(v) and v > best_v:
            best, best_v = i, v
    return best


def _sample(target: Target, tasks: list[Any], cfg: GuidedConfig) -> tuple[list[list[Any]], list[Any]]:
    """All sampled and greedy completions, in one generate call (the engine batches them)."""
    from selflab.models.types import GenerationRequest

    if target.lm is None:
        raise SelflabError(
            "probe-guided generation needs the selflab model backend", "load a model via load_model"
        )
    requests = []
    for qi, t in enumerate(tasks):
        for s in range(cfg.n_samples):
            requests.append(
                GenerationRequest.chat(
                    t.prompt,
                    temperature=cfg.temperature,
                    max_new_tokens=cfg.max_new_tokens,
                    seed=cfg.seed * 1_000_003 + qi * 101 + s,
                    logprobs=True,
                )
            )
        requests.append(
            GenerationRequest.chat(
                t.prompt, temperature=0.0, max_new_tokens=cfg.max_new_tokens, logprobs=True
            )
        )
    out = target.lm.generate(requests)
    k = cfg.n_samples + 1
    samples = [out[i * k : i * k + cfg.n_samples] for i in range(len(tasks))]
    greedy = [out[i * k + cfg.n_samples] for i in range(len(tasks))]
    return samples, greedy


def _inputs(target: Target, records: list[SampleRecord]) -> list[ProbeInput]:
    from selflab.models.types import Message

    out = []
    for r in records:
        prefix = target.render([Message(role="user", content=r.prompt)])
        answer = r.answer if r.answer.strip() else " "
        out.append(ProbeInput(text=prefix + answer, span=(len(prefix), len(prefix) + len(answer))))
    return out


def _judge(target: Target, records: list[SampleRecord], notes: list[str]) -> None:
    try:
        from selflab.judges import PointwiseItem, RubricJudge
        from selflab.models.types import SamplingParams
    except ImportError:
        notes.append("selflab.judges is not available: judge ranking skipped")
        return
    judge = RubricJudge(target.lm, direct=True, sampling=SamplingParams(temperature=0.0, max_new_tokens=6))
    items = [
        PointwiseItem(prompt=r.prompt, response=r.answer, id=f"{r.question_id}:{r.sample}") for r in records
    ]
    for r, j in zip(records, judge.judge(items), strict=True):
        r.judge_score, r.judge_error = j.score, j.parse_error
    failed = sum(r.judge_score is None for r in records)
    if failed:
        notes.append(f"judge: {failed}/{len(records)} judgments did not parse (ranked lowest)")


def run_guided(
    cfg: GuidedConfig, target: Target, tasks: list[Any] | None = None, log: Any = print
) -> tuple[GuidedSummary, list[SampleRecord]]:
    t0 = time.perf_counter()
    notes: list[str] = []
    tasks = tasks if tasks is not None else default_tasks(cfg.n_questions, cfg.seed)
    splits = [question_split(t.id, cfg.seed, cfg.test_fraction) for t in tasks]
    if "train" not in splits or "test" not in splits:
        raise SelflabError("too few questions to split into train and test", "raise --n-questions")
    samples, greedy = _sample(target, tasks, cfg)
    log(f"sampled {len(tasks)} x {cfg.n_samples} answers ({time.perf_counter() - t0:.1f}s)")

    records: list[SampleRecord] = []
    for t, split, outs, g in zip(tasks, splits, samples, greedy, strict=True):
        for s, c in enumerate([*outs, g]):
            text = c.text if not c.error else ""
            records.append(
                SampleRecord(
                    question_id=t.id,
                    split=split,
                    sample=s if s < len(outs) else -1,
                    prompt=t.prompt,
                    answer=text,
                    correct=bool(text) and t.check(text),
                    mean_logprob=_mean_logprob(c),
                )
            )

    # --- probe: trained on train questions' samples, layer chosen on held-out train questions
    acts = extract(
        target.model,
        target.tokenizer,
        _inputs(target, records),
        positions=[cfg.position],
        batch_size=cfg.batch_size,
    )[cfg.position]
    split_arr = np.array([r.split for r in records])
    y = np.array([int(r.correct) for r in records])
    qids = [r.question_id for r in records]
    train_idx = np.flatnonzero(split_arr == "train")
    inner = np.array([question_split(qids[i], cfg.seed + 1, 0.3) for i in train_idx])
    fit_idx, val_idx = train_idx[inner == "train"], train_idx[inner == "test"]
    train_acc = float(y[train_idx].mean())
    layer, val_auc, probe_auc = None, None, None
    # a probe needs two examples of each label to cross-validate, the layer choice both labels
    if np.bincount(y[fit_idx], minlength=2).min() < 2 or len(set(y[val_idx])) < 2:
        notes.append(
            f"probe skipped: the training samples hold (almost) a single class (accuracy {train_acc:.2f}); "
            "use easier questions or more of them"
        )
    else:
        best = (-1.0, 0)
        for lay in acts.layers:
            p = make_probe(cfg.probe, seed=cfg.seed).fit(acts.layer(lay)[fit_idx], y[fit_idx])
            a = auc(p.score(acts.layer(lay)[val_idx]), y[val_idx])
            if a > best[0]:
                best = (a, lay)
        val_auc, layer = best
        probe = make_probe(cfg.probe, seed=cfg.seed).fit(acts.layer(layer)[train_idx], y[train_idx])
        scores = probe.score(acts.layer(layer))
        for r, s in zip(records, scores, strict=True):
            r.probe_score = float(s)
        test_idx = np.flatnonzero(split_arr == "test")
        if len(set(y[test_idx])) == 2:
            probe_auc = auc(scores[test_idx], y[test_idx])
        log(f"probe layer {layer} (val AUC {val_auc:.3f}); test-sample AUC {probe_auc}")

    test_records = [r for r in records if r.split == "test" and r.sample >= 0]
    if cfg.judge:
        _judge(target, test_records, notes)
    else:
        notes.append("judge ranking disabled (--no-judge)")

    # --- selection on test questions
    by_q: dict[str, list[SampleRecord]] = {}
    greedy_by_q: dict[str, SampleRecord] = {}
    for r in records:
        if r.split != "test":
            continue
        if r.sample < 0:
            greedy_by_q[r.question_id] = r
        else:
            by_q.setdefault(r.question_id, []).append(r)
    per: dict[str, list[float]] = {m: [] for m in METHODS}
    for q, rs in by_q.items():
        c = [float(r.correct) for r in rs]
        per["first_sample"].append(c[0])
        per["random_sample"].append(float(np.mean(c)))
        per["greedy"].append(float(greedy_by_q[q].correct))
        counts = Counter(normalise(r.answer) for r in rs)
        top = max(counts.values())
        per["majority"].append(next(c[i] for i, r in enumerate(rs) if counts[normalise(r.answer)] == top))
        per["likelihood"].append(c[_pick([r.mean_logprob for r in rs])])
        if layer is not None:
            per["probe"].append(c[_pick([r.probe_score for r in rs])])
        if cfg.judge and any(r.judge_score is not None for r in rs):
            per["judge"].append(c[_pick([r.judge_score for r in rs])])
        elif cfg.judge:
            per["judge"].append(c[0])  # no parsed judgment: the judge cannot choose
        per["oracle"].append(float(max(c)))
    accuracy = {m: mean_ci(v, n_boot=cfg.n_boot, seed=cfg.seed) for m, v in per.items() if v}
    diff_first = diff_random = None
    if per["probe"]:
        diff_first = mean_ci(
            np.array(per["probe"]) - np.array(per["first_sample"]), n_boot=cfg.n_boot, seed=cfg.seed
        )
        diff_random = mean_ci(
            np.array(per["probe"]) - np.array(per["random_sample"]), n_boot=cfg.n_boot, seed=cfg.seed
        )
    summary = GuidedSummary(
        model=target.name,
        n_train_questions=len({r.question_id for r in records if r.split == "train"}),
        n_test_questions=len(by_q),
        n_samples=cfg.n_samples,
        train_sample_accuracy=train_acc,
        probe_layer=layer,
        probe_layer_val_auc=val_auc,
        probe_test_auc=probe_auc,
        accuracy=accuracy,
        probe_minus_first=diff_first,
        probe_minus_random=diff_random,
        notes=notes,
        seconds=time.perf_counter() - t0,
    )
    return summary, records


def self_knowledge_statements(
    records: list[SampleRecord], target: Target, balance_seed: int | None = 0
) -> list[Any]:
    """The sampled answers as a probe dataset (`Statement`s with the answer span), labelled by the
    verifier; balanced by downsampling when `balance_seed` is set. Entity = question id."""
    from selflab.probes.datasets import Statement, balance

    out = []
    for r, inp in zip(records, _inputs(target, records), strict=True):
        out.append(
            Statement(
                text=inp.text,
                label=int(r.correct),
                entity=r.question_id,
                dataset="self_knowledge",
                span=inp.span or (0, len(inp.text)),
                meta={"sample": r.sample},
            )
        )
    return balance(out, balance_seed) if balance_seed is not None else out
