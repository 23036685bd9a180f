"""The one place where run records become training datasets.

Every trainer in selflab consumes TRL's *conversational* formats, built here and nowhere else:

- SFT: `{"prompt": [messages...], "completion": [{"role": "assistant", ...}]}` (prompt-completion,
  so the loss covers only the answer),
- DPO: `{"prompt": [...], "chosen": [assistant msg], "rejected": [assistant msg]}`,
- KTO: `{"prompt": [...], "completion": [assistant msg], "label": bool}`.

It also holds the preference-pair rules shared by every loop (best vs worst, ties and unparsable
scores dropped and counted), so two loops can never disagree on what a valid pair is.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from selflab.errors import SelflabError
from selflab.models.types import Message


def _messages(prompt: str | Sequence[Message] | Sequence[dict[str, str]]) -> list[dict[str, str]]:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    out = []
    for m in prompt:
        if isinstance(m, Message):
            out.append({"role": m.role, "content": m.content})
        else:
            out.append({"role": str(m["role"]), "content": str(m["content"])})
    if not out:
        raise SelflabError("a training example has an empty prompt", "give every example a prompt")
    return out


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


# -- records the loops write ---------------------------------------------------------------------


class SFTExample(BaseModel):
    """One demonstration to imitate (e.g. a verified answer, a game winner's turn)."""

    prompt: list[Message]
    response: str
    weight: float = Field(1.0, ge=0.0, description="scales this example's loss (honoured by train('sft'))")
    source: str = ""
    id: str = ""


class PreferencePair(BaseModel):
    """A chosen and a rejected answer to one prompt, with the scores that ordered them."""

    prompt: list[Message]
    chosen: str
    rejected: str
    chosen_score: float | None = None
    rejected_score: float | None = None
    source: str = ""
    id: str = ""


class KTOExample(BaseModel):
    """One answer labelled desirable (True) or undesirable (False)."""

    prompt: list[Message]
    response: str
    label: bool
    source: str = ""
    id: str = ""


class ScoredResponse(BaseModel):
    """One sampled response and its score; `score=None` means the scorer could not parse a verdict
    (a parse failure is never a score)."""

    response: str
    score: float | None = None


class PairCounts(BaseModel):
    """What happened to each prompt group when pairs were built: reported, never silently lost."""

    groups: int = 0
    pairs: int = 0
    unparsable_responses: int = 0
    dropped_too_few_scored: int = 0
    dropped_ties: int = 0
    dropped_duplicate_text: int = 0


class PairBuildResult(BaseModel):
    pairs: list[PreferencePair] = Field(default_factory=list)
    counts: PairCounts = Field(default_factory=PairCounts)


# -- rows in TRL's formats -------------------------------------------------------------------------


def sft_rows(examples: Iterable[SFTExample]) -> list[dict[str, Any]]:
    """Prompt-completion rows; a `weight` column only when some example's weight is not 1 (the
    trainer then weights the loss per example, see `training/weighted.py`)."""
    exs = list(examples)
    rows = [{"prompt": _messages(e.prompt), "completion": _assistant(e.response)} for e in exs]
    if any(e.weight != 1.0 for e in exs):
        for r, e in zip(rows, exs, strict=True):
            r["weight"] = float(e.weight)
    return rows


def dpo_rows(pairs: Iterable[PreferencePair]) -> list[dict[str, Any]]:
    return [
        {"prompt": _messages(p.prompt), "chosen": _assistant(p.chosen), "rejected": _assistant(p.rejected)}
        for p in pairs
    ]


def kto_rows(examples: Iterable[KTOExample]) -> list[dict[str, Any]]:
    return [
        {"prompt": _messages(e.prompt), "completion": _assistant(e.response), "label": bool(e.label)}
        for e in examples
    ]


def kto_from_pairs(pairs: Iterable[PreferencePair]) -> list[KTOExample]:
    """Unpair preferences for KTO: chosen -> desirable, rejected -> undesirable."""
    out: list[KTOExample] = []
    for p in pairs:
        out.append(
            KTOExample(prompt=p.prompt, response=p.chosen, label=True, source=p.source, id=p.id + ":c")
        )
        out.append(
            KTOExample(prompt=p.prompt, response=p.rejected, label=False, source=p.source, id=p.id + ":r")
        )
    return out


# -- pair construction rules -----------------------------------------------------------------------


def best_vs_worst_pairs(
    prompt: list[Message],
    responses: Sequence[ScoredResponse],
    counts: PairCounts,
    min_margin: float = 0.0,
    source: str = "",
    pair_id: str = "",
) -> PreferencePair | None:
    """Self-Rewarding's rule for one prompt: highest-scored response against the lowest.

    Unparsable scores are dropped (and counted); a group needs two scored responses with
    different texts; when the best and worst score are equal (or closer than `min_margin`) the
    group is a tie and yields no pair. Updates `counts` in place.
    """
    counts.groups += 1
    scored = [r for r in responses if r.score is not None]
    counts.unparsable_responses += len(responses) - len(scored)
    if len(scored) < 2:
        counts.dropped_too_few_scored += 1
        return None
    # max/min keep the first occurrence, so the choice is deterministic for a given sample order.
    best = max(scored, key=lambda r: r.score)  # type: ignore[arg-type, return-value]
    worst = min(scored, key=lambda r: r.score)  # type: ignore[arg-type, return-value]
    assert best.score is not None and worst.score is not None
    if best.score - worst.score <= min_margin:
        counts.dropped_ties += 1
        return None
    if best.response.strip() == worst.response.strip():
        counts.dropped_duplicate_text += 1
        return None
    counts.pairs += 1
    return PreferencePair(
        prompt=prompt,
        chosen=best.response,
        rejected=worst.response,
        chosen_score=best.score,
        rejected_score=worst.score,
        source=source,
        id=pair_id,
    )


def build_pairs(
    groups: Sequence[tuple[list[Message], Sequence[ScoredResponse]]],
    min_margin: float = 0.0,
    source: str = "",
) -> PairBuildResult:
    """Apply `best_vs_worst_pairs` to every prompt group; returns pairs and the drop counts."""
    counts = PairCounts()
    pairs = []
    for i, (prompt, responses) in enumerate(groups):
        p = best_vs_worst_pairs(
            prompt, responses, counts, min_margin=min_margin, source=source, pair_id=str(i)
        )
        if p is not None:
            pairs.append(p)
    return PairBuildResult(pairs=pairs, counts=counts)


def mean_score(scores: Sequence[float | None]) -> float | None:
    """Average of k judgments, ignoring unparsable ones; None when none parsed."""
    ok = [s for s in scores if s is not None]
    return statistics.fmean(ok) if ok else None


# -- files ----------------------------------------------------------------------------------------

REQUIRED_COLUMNS = {
    "sft": ({"prompt", "completion"}, {"messages"}),
    "dpo": ({"prompt", "chosen", "rejected"},),
    "kto": ({"prompt", "completion", "label"},),
}


def save_parquet(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write rows as Parquet (atomically), loadable with `datasets.load_dataset("parquet", ...)`."""
    import datasets

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    datasets.Dataset.from_list(rows).to_parquet(str(tmp))
    tmp.replace(path)
    return path


def load_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a dataset file (.jsonl, .json or .parquet) into a list of dicts."""
    path = Path(path)
    if not path.is_file():
        raise SelflabError(f"dataset file {path} does not exist", "check the --data path")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import datasets

        return datasets.Dataset.from_parquet(str(path)).to_list()
    text = path.read_text(encoding="utf-8")
    if suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SelflabError(
                    f"{path}:{n} is not valid JSON ({e.msg})", "fix or remove that line"
                ) from e
        return rows
    if suffix == ".json":
        data = json.loads(text)
        if not isinstance(data, list):
            raise SelflabError(f"{path} must hold a JSON list of examples", "wrap the examples in [...]")
        return data
    raise SelflabError(f"unsupported dataset file type {suffix!r}", "use .jsonl, .json or .parquet")


def normalise_rows(method: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check a user dataset has the columns `method` needs and turn plain-string prompts and
    answers into the conversational format."""
    if method not in REQUIRED_COLUMNS:
        raise SelflabError(f"unknown training method {method!r}", "use sft, dpo or kto")
    if not rows:
        raise SelflabError("the dataset is empty", "give at least one example")
    keys = set(rows[0])
    if not any(req <= keys for req in REQUIRED_COLUMNS[method]):
        want = " or ".join(str(sorted(r)) for r in REQUIRED_COLUMNS[method])
        raise SelflabError(f"{method} data needs columns {want}, found {sorted(keys)}", "rename the columns")
    out = []
    for r in rows:
        if "messages" in r and "prompt" not in r:
            out.append({"messages": _messages(r["messages"])})
            continue
        new = dict(r)
        new["prompt"] = _messages(r["prompt"])
        for k in ("completion", "chosen", "rejected"):
            if k in r:
                new[k] = _assistant(r[k]) if isinstance(r[k], str) else _messages(r[k])
        if "label" in r:
            new["label"] = bool(r["label"])
        out.append(new)
    return out
