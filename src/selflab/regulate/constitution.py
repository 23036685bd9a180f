"""The constitution as data: a versioned list of numbered principles, each with its rationale and
provenance (which cycle, which proposer, which debate and vote accepted it).

Why data and not a prompt string: a constitution that models amend must be diffable, auditable
and reproducible. Every version is a YAML file; a malformed file is rejected with the line that is
wrong, so a hand edit never silently drops a principle.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from selflab.errors import SelflabError

STARTER = Path(__file__).parent / "data" / "starter_constitution.yaml"
MAX_PRINCIPLE_CHARS = 400


class Provenance(BaseModel):
    """Where a principle came from. Principles of the starting constitution have cycle 0."""

    model_config = ConfigDict(extra="forbid")

    cycle: int = 0
    proposer: str = "human"
    debate: str | None = Field(None, description="id of the debate record that discussed it")
    vote: str | None = Field(None, description="the vote that accepted it, e.g. '3-1'")


class Principle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^P\d+$")
    text: str = Field(min_length=3, max_length=MAX_PRINCIPLE_CHARS)
    rationale: str = ""
    provenance: Provenance = Field(default_factory=Provenance)


class Constitution(BaseModel):
    """One version. `version` counts accepted amendments; `parent` is the version it came from."""

    model_config = ConfigDict(extra="forbid")

    name: str = "constitution"
    version: int = Field(1, ge=1)
    parent: int | None = None
    preamble: str = "You are a helpful, honest and harmless assistant. Follow these principles:"
    principles: list[Principle] = Field(default_factory=list)

    def get(self, pid: str) -> Principle | None:
        return next((p for p in self.principles if p.id == pid), None)

    def next_id(self) -> str:
        nums = [int(p.id[1:]) for p in self.principles]
        return f"P{max(nums, default=0) + 1}"

    def render(self) -> str:
        """The text a model sees as its system prompt."""
        lines = [self.preamble] + [f"{p.id}. {p.text}" for p in self.principles]
        return "\n".join(lines)

    def chars(self) -> int:
        return sum(len(p.text) for p in self.principles)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=100)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_yaml(), encoding="utf-8")
        tmp.replace(path)
        return path


def _principle_lines(text: str) -> dict[int, int]:
    """Principle index -> 1-based line of its `- ` item, from the YAML node tree."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    out: dict[int, int] = {}
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if getattr(key, "value", None) == "principles" and isinstance(value, yaml.SequenceNode):
                for i, item in enumerate(value.value):
                    out[i] = item.start_mark.line + 1
    return out


def parse_constitution(text: str, source: str = "<constitution>") -> Constitution:
    """Parse YAML text; every problem is a SelflabError naming the file and line."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        raise SelflabError(
            f"{source}: {where}: not valid YAML ({getattr(exc, 'problem', exc)})",
            "fix the YAML syntax at that line (indentation, a ':' inside text needs quotes)",
        ) from exc
    if not isinstance(data, dict):
        raise SelflabError(f"{source}: line 1: a constitution is a mapping", "start with 'principles:'")
    if not isinstance(data.get("principles"), list):
        raise SelflabError(f"{source}: no 'principles:' list", "add 'principles:' with '- id: P1' items")
    lines = _principle_lines(text)
    try:
        cons = Constitution.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = list(err["loc"])
        where = "line 1"
        if len(loc) >= 2 and loc[0] == "principles" and isinstance(loc[1], int):
            where = f"line {lines.get(loc[1], '?')} (principle #{loc[1] + 1})"
        field = ".".join(str(x) for x in loc)
        raise SelflabError(
            f"{source}: {where}: field '{field}': {err['msg']}",
            "each principle needs 'id: P<number>' and 'text:' (3-400 characters); "
            "optional: rationale, provenance",
        ) from exc
    seen: set[str] = set()
    for i, p in enumerate(cons.principles):
        if p.id in seen:
            raise SelflabError(
                f"{source}: line {lines.get(i, '?')}: duplicate principle id {p.id}", "give it a new id"
            )
        seen.add(p.id)
    return cons


def load_constitution(path: str | Path | None = None) -> Constitution:
    """A constitution file (default: the shipped starter)."""
    path = Path(path) if path is not None else STARTER
    if not path.is_file():
        raise SelflabError(f"constitution file {path} does not exist", "check the --constitution path")
    return parse_constitution(path.read_text(encoding="utf-8"), source=str(path))


def diff(old: Constitution, new: Constitution) -> str:
    """A readable unified diff of two versions, one principle per line with its provenance."""

    def lines(c: Constitution) -> list[str]:
        return [
            f"{p.id}. {p.text}   [cycle {p.provenance.cycle}, by {p.provenance.proposer}"
            + (f", vote {p.provenance.vote}" if p.provenance.vote else "")
            + "]\n"
            for p in c.principles
        ]

    return "".join(
        difflib.unified_diff(
            lines(old), lines(new), fromfile=f"v{old.version}", tofile=f"v{new.version}", n=1
        )
    )


class VersionStore:
    """`constitutions/v<N>.yaml` and `v<N>.diff` in a run directory: every version ever accepted."""

    def __init__(self, run_path: str | Path) -> None:
        self.dir = Path(run_path) / "constitutions"

    def save(self, cons: Constitution, previous: Constitution | None = None) -> Path:
        path = cons.save(self.dir / f"v{cons.version}.yaml")
        if previous is not None:
            (self.dir / f"v{cons.version}.diff").write_text(diff(previous, cons), encoding="utf-8")
        return path

    def versions(self) -> list[Constitution]:
        if not self.dir.is_dir():
            return []
        files = sorted(self.dir.glob("v*.yaml"), key=lambda p: int(p.stem[1:]))
        return [load_constitution(f) for f in files]

    def latest(self) -> Constitution | None:
        vs = self.versions()
        return vs[-1] if vs else None

    def diff_text(self, version: int) -> str:
        f = self.dir / f"v{version}.diff"
        return f.read_text(encoding="utf-8") if f.is_file() else ""


def churn(old: Constitution, new: Constitution) -> int:
    """Principles added, removed or reworded between two versions."""
    a = {p.id: p.text for p in old.principles}
    b = {p.id: p.text for p in new.principles}
    return len(a.keys() ^ b.keys()) + sum(1 for k in a.keys() & b.keys() if a[k] != b[k])


def as_dict(cons: Constitution) -> dict[str, Any]:
    return cons.model_dump(mode="json")
