"""Judging benchmark units: judges built from spec strings ("pairwise[fence=none]") with the
benchmark's shared settings, and one batched call per protocol whose judgments are kept with their
unit's truth as `JudgmentRecord`s (records/judgments.jsonl)."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from selflab.errors import ConfigError
from selflab.evalbench.config import BenchConfig
from selflab.evalbench.units import Unit
from selflab.judges.types import Judge, Judgment, PairwiseItem, PointwiseItem
from selflab.models.types import LanguageModel


class JudgmentRecord(BaseModel):
    """One judgment with its unit's truth, as written to records/judgments.jsonl."""

    judge: str
    unit: Unit
    score: float | None = None
    verdict: str | None = None
    parse_error: str | None = None
    raw: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


def judge_options(config: BenchConfig) -> dict[str, Any]:
    if config.cot:
        return {"max_new_tokens": config.max_new_tokens or 256}
    return {"direct": True, "max_new_tokens": config.max_new_tokens or 8}


def make_judge(spec: str, model: LanguageModel, config: BenchConfig) -> Judge:
    """A judge from a spec "kind" or "kind[key=value,...]": the benchmark's settings go to every
    kind that declares them, the spec's own options override them."""
    from selflab.judges.registry import accepted, build_judge

    kind, own = parse_judge_spec(spec)
    shared = accepted(kind, {"seed": config.seed, **judge_options(config)})
    return build_judge(kind, model, **(shared | own))


def parse_judge_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """("pairwise", {"fence": "none"}) from "pairwise[fence=none]"; values are read as JSON when
    they parse (true, 3, 0.5) and as strings otherwise."""
    spec = spec.strip()
    if not spec.endswith("]") or "[" not in spec:
        return spec, {}
    kind, _, body = spec[:-1].partition("[")
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in _top_level_split(body))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip():
            raise ConfigError(
                f"judge option {part!r} in {spec!r} is not key=value", "write e.g. pairwise[fence=none]"
            )
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value.strip()
    return kind, options


def _top_level_split(body: str) -> list[str]:
    """`body` split at the commas outside brackets, so list values such as `scale=[1,5]` (a
    JSON list) stay one option."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(body):
        if ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            parts.append(body[start:i])
            start = i + 1
    return [*parts, body[start:]]


def judge_specs(config: BenchConfig) -> list[str]:
    """The judges to run: as given, plus (with `ablate_defences`) each one with its verdict
    constraint and fence turned off, for the kinds that have them."""
    from selflab.judges.registry import accepted

    specs = list(config.judges)
    if config.ablate_defences:
        for spec in config.judges:
            kind, own = parse_judge_spec(spec)
            off = accepted(kind, {"constrain": False, "fence": "none"})
            if off and any(own.get(k) != v for k, v in off.items()):
                body = ",".join(
                    f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in (own | off).items()
                )
                specs.append(f"{kind}[{body}]")
    return list(dict.fromkeys(specs))


def run_judge(judge: Judge, units: list[Unit]) -> list[JudgmentRecord]:
    """Judge every unit the judge can handle: all pointwise units in one call, all pairs in one."""
    name = judge.name
    out: list[JudgmentRecord] = []
    point = [u for u in units if u.mode == "pointwise"]
    pair = [u for u in units if u.mode == "pairwise"]
    if "pointwise" in judge.protocols and point:
        items = [
            PointwiseItem(
                prompt=u.prompt, response=u.response, reference=u.reference, history=u.history, id=u.id
            )
            for u in point
        ]
        out += [_record(name, u, j) for u, j in zip(point, judge.judge(items), strict=True)]  # type: ignore[attr-defined]
    if "pairwise" in judge.protocols and pair:
        items = [
            PairwiseItem(
                prompt=u.prompt, response_a=u.response, response_b=u.response_b, history=u.history, id=u.id
            )
            for u in pair
        ]
        out += [_record(name, u, j) for u, j in zip(pair, judge.compare(items), strict=True)]  # type: ignore[attr-defined]
    return out


def _record(name: str, unit: Unit, j: Judgment) -> JudgmentRecord:
    return JudgmentRecord(
        judge=name,
        unit=unit,
        score=j.score,
        verdict=j.verdict,
        parse_error=j.parse_error,
        raw=j.raw,
        details=j.details,
    )
