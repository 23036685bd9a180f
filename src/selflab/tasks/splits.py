"""Task families and their held-out splits: the ONE way any loop or evaluation gets training or
held-out items.

A task is about one or more *entities*: an instruction's topic, a fact question's countries, a
word problem's person and kind of item, an arithmetic expression. The split hashes each entity (stable
across runs, seeds and machines) and puts a task on the held-out side when all its entities are
held out, on the training side when none is, and on neither when it straddles (a comparison of a
training country with a held-out one). So training and evaluation never share an entity, and,
because every topic's sentences are its own, no sentence either (tests check both per loop).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal, get_args

from selflab.errors import ConfigError
from selflab.tasks.types import Task

FamilyName = Literal["instructions", "arithmetic", "word_problems", "facts"]
FAMILIES: tuple[str, ...] = get_args(FamilyName)
TopicPool = Literal["v1", "all"]
Side = Literal["train", "heldout"]


def entities(task: Task) -> tuple[str, ...]:
    """The entities a task is about (the units of the split). Instruction topics and arithmetic
    prompts hash as bare strings, as the main job's published split always did."""
    if task.kind == "instruction" and task.meta.get("topic"):
        return (str(task.meta["topic"]),)
    if task.kind == "fact" and task.meta.get("country"):
        others = [task.meta["other"]] if task.meta.get("other") else []
        return tuple(f"country:{c}" for c in [task.meta["country"], *others])
    if task.kind == "word_problem":
        from selflab.tasks.arithmetic import PEOPLE, THINGS

        words = set(task.prompt.replace(".", " ").replace("?", " ").split())
        found = [f"person:{p}" for p in PEOPLE if p in words] + [f"item:{t}" for t in THINGS if t in words]
        if found:
            return tuple(found)
    return (task.prompt,)


def _unit(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32


def entity_heldout(entity: str, fraction: float) -> bool:
    """Is this entity (a topic name, `country:X`, `person:X`, ...) on the held-out side?"""
    return _unit(entity) < fraction


def side(task: Task, fraction: float) -> Side | None:
    """ "heldout" when every entity of the task is held out, "train" when none is, else None."""
    held = [_unit(e) < fraction for e in entities(task)]
    if all(held):
        return "heldout"
    if not any(held):
        return "train"
    return None


def is_heldout(task: Task, fraction: float) -> bool:
    return side(task, fraction) == "heldout"


def _generate(family: str, n: int, seed: int, pool: str | Sequence[str] | None) -> list[Task]:
    from selflab import tasks as T

    if family == "arithmetic":
        return T.arithmetic_tasks(n, seed=seed)
    if family == "word_problems":
        return T.word_problem_tasks(n, seed=seed)
    if family == "facts":
        return T.fact_tasks(n, seed=seed)
    if family == "instructions":
        return T.instruction_tasks(n, seed=seed, pool=pool)
    raise ConfigError(f"unknown task family {family!r}", f"use one of {', '.join(FAMILIES)}")


def split_tasks(
    family: str,
    n: int,
    seed: int,
    heldout: bool,
    fraction: float,
    kinds: Sequence[str] | None = None,
    topics: str | Sequence[str] | None = "all",
) -> list[Task]:
    """`n` distinct tasks of `family` on the training (`heldout=False`) or held-out side of the
    entity split. Instruction tasks are balanced over constraint `kinds`, drawn one at a time per
    kind from the topic pool `topics` ("v1": the main job's eight topics; "all")."""
    if family not in FAMILIES:
        raise ConfigError(f"unknown task family {family!r}", f"use one of {', '.join(FAMILIES)}")
    want: Side = "heldout" if heldout else "train"
    seen: set[str] = set()
    if family == "instructions":
        from selflab.tasks.instructions import CONSTRAINT_KINDS, instruction_task

        cycle = list(kinds) if kinds else list(CONSTRAINT_KINDS)
        out: list[Task] = []
        i = 0
        # Kinds without parameters have one prompt per topic; once a kind has no new prompt left
        # on this side of the split it drops out of the cycle.
        while len(out) < n:
            if not cycle:
                raise ConfigError(
                    f"only {len(out)} distinct tasks exist on this side of the split", "ask for fewer"
                )
            kind = cycle[i % len(cycle)]
            for attempt in range(80):
                t = instruction_task(kind, seed * 1_000_003 + i * 1009 + attempt, topics)
                if t is not None and side(t, fraction) == want and t.prompt not in seen:
                    seen.add(t.prompt)
                    out.append(t.model_copy(update={"id": f"instr-{seed}-{len(out)}"}))
                    i += 1
                    break
            else:
                cycle.remove(kind)
        return out
    out = []
    for round_ in range(50):
        for t in _generate(family, 4 * n + 8, seed * 1000 + round_, topics):
            if side(t, fraction) == want and t.prompt not in seen:
                seen.add(t.prompt)
                out.append(t)
                if len(out) == n:
                    return out
    raise ConfigError(f"could not draw {n} distinct {family} tasks on the {want} side", "ask for fewer")


def family_tasks(
    families: Sequence[str],
    n: int,
    seed: int,
    heldout: bool,
    fraction: float,
    topics: str | Sequence[str] | None = "all",
) -> list[Task]:
    """`n` tasks spread evenly over `families`, each on the given side of its split."""
    out: list[Task] = []
    k = len(families)
    for i, fam in enumerate(families):
        m = n // k + (1 if i < n % k else 0)
        if m:
            out += split_tasks(fam, m, seed + 7919 * i, heldout, fraction, topics=topics)
    return out


# sentences that state an answer format, shared by every task of a family (not content)
_FORMAT_SENTENCES = ("the answer is", "answer with", "give the final number")


def content_sentences(task: Task) -> set[str]:
    """The sentences that carry a task's content (its topic sentences, its question), for the
    contamination tests: training and evaluation sets must share none. The constraint's own
    words (a required end phrase) are instruction text, not content, and are left out."""
    import re

    texts = [task.reference]
    if task.kind != "instruction":
        texts.append(task.prompt)
    from selflab.tasks.instructions import END_PHRASES

    phrases = [*END_PHRASES, *(str(c.get("phrase", "")) for c in task.params.get("constraints", []))]
    out = set()
    for text in texts:
        for p in phrases:
            if p:
                text = text.replace(p, " ")
        for s in re.split(r"(?<=[.!?])\s+|\n+", text):
            s = s.strip().strip("-").strip()
            low = s.lower()
            if len(s.split()) >= 4 and not low.startswith(_FORMAT_SENTENCES):
                out.add(low)
    return out
