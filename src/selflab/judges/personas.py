"""Judge personas for role-play diversity (research plan 2.1.2): a built-in set, user-defined ones,
and personas the model writes itself (parsed defensively, with the raw text recorded)."""

from __future__ import annotations

import json
import random
import re
from importlib import resources
from pathlib import Path

from pydantic import BaseModel

from selflab.errors import ConfigError
from selflab.judges.prompts import render
from selflab.models.types import GenerationRequest, LanguageModel


class Persona(BaseModel):
    name: str
    description: str


class PersonaGeneration(BaseModel):
    """What the model wrote when asked for personas, and what we kept: an auditable record."""

    model: str
    seed: int
    raw: str
    personas: list[str]
    rejected: list[str]
    fallback: list[str]
    error: str | None = None


def builtin_personas() -> list[Persona]:
    text = resources.files("selflab.judges").joinpath("personas.json").read_text(encoding="utf-8")
    return [Persona(**p) for p in json.loads(text)]


def pick_personas(n: int, seed: int = 0) -> list[str]:
    """n built-in persona descriptions in a seeded order; the first n of a larger pick are the same,
    so juries of growing size are nested. Cycles when n exceeds the set."""
    pool = [p.description for p in builtin_personas()]
    random.Random(seed).shuffle(pool)
    return [pool[i % len(pool)] for i in range(n)]


def load_personas(path: str | Path) -> list[str]:
    """User-defined personas: a .json list (strings or {"description": ...}) or a text file, one a line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"persona file {str(path)!r} does not exist", "pass an existing .json or .txt file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
            personas = [p if isinstance(p, str) else p["description"] for p in data]
        except (json.JSONDecodeError, TypeError, KeyError) as exc:
            raise ConfigError(
                f"persona file {str(path)!r} is not a JSON list of strings or of objects with 'description'",
                'write e.g. ["a strict judge from London", "a kind teacher from Lagos"]',
            ) from exc
    else:
        personas = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not personas:
        raise ConfigError(f"persona file {str(path)!r} holds no personas", "add at least one persona")
    return personas


_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")
_ALLOWED = re.compile(r"^[A-Za-z][\w ,.'()\-/&]*$")


def parse_personas(raw: str, n: int) -> tuple[list[str], list[str]]:
    """Keep lines that look like a one-line person description; return (kept, rejected)."""
    kept: list[str] = []
    rejected: list[str] = []
    for line in raw.splitlines():
        line = _LIST_MARKER.sub("", line).strip().strip('"').rstrip(".").strip()
        if not line:
            continue
        if (
            len(kept) >= n
            or not 12 <= len(line) <= 200
            or not _ALLOWED.match(line)
            or not line.lower().startswith(("a ", "an "))
            or line.lower() in (k.lower() for k in kept)
        ):
            rejected.append(line)
            continue
        kept.append(line)
    return kept, rejected


def generate_personas(
    model: LanguageModel, n: int, seed: int = 0, temperature: float = 0.9, max_new_tokens: int = 400
) -> PersonaGeneration:
    """Ask the model for n personas; missing ones are filled from the built-in set (recorded)."""
    request = GenerationRequest.chat(
        render("persona_generate", n=n), temperature=temperature, max_new_tokens=max_new_tokens, seed=seed
    )
    [completion] = model.generate([request])
    error = completion.error if completion.finish_reason == "error" else None
    kept, rejected = parse_personas(completion.text, n) if error is None else ([], [])
    unused = (
        [p for p in pick_personas(len(builtin_personas()), seed) if p not in kept] or kept or ["a fair judge"]
    )
    fallback = [unused[i % len(unused)] for i in range(n - len(kept))]
    return PersonaGeneration(
        model=str(getattr(model, "name", type(model).__name__)),
        seed=seed,
        raw=completion.text,
        personas=kept + fallback,
        rejected=rejected,
        fallback=fallback,
        error=error,
    )
