"""IFEval-style instruction tasks: a short writing request plus one checkable constraint.

`respond(task, rng, mode)` builds responses of known status from shipped topic sentences:
"correct" satisfies the constraint, "subtle" misses it by a small margin (one word too many, one
bullet short, one capitalised word), "off" ignores both the topic and the constraint. The task
generator and the judge benchmark both use it; the verifier, not the builder, has the last word.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from selflab.tasks.text import contains_term
from selflab.tasks.types import Task
from selflab.tasks.verifiers import LANGUAGE_NAMES, words

ResponseMode = Literal["correct", "subtle", "off"]

CONSTRAINT_KINDS = (
    "max_words",
    "min_words",
    "include_keywords",
    "forbidden_words",
    "bullets",
    "json_keys",
    "lowercase",
    "uppercase",
    "language",
    "ends_with",
    "paragraphs",
    "no_commas",
    "title",
)

END_PHRASES = (
    "Is there anything else I can help with?",
    "That is all for today.",
    "Thank you for reading.",
    "Let me know if you have questions.",
)
JSON_KEYS = (("title", "summary"), ("topic", "facts"), ("name", "description", "tip"))


# The eight topics the main job (`configs/verified_sft.yaml`) was measured on; its task draws use
# exactly this pool so its published numbers stay reproducible. Everything else uses all topics.
V1_TOPICS = ("bees", "bicycles", "bread", "chess", "rivers", "sleep", "the moon", "volcanoes")


@lru_cache(maxsize=1)
def all_topics() -> dict[str, dict[str, list[str]]]:
    """Every shipped topic: name -> {"en": sentences, "keywords": words, "fr"/"es"/"de": sentences}."""
    return json.loads(resources.files("selflab.tasks").joinpath("data/topics.json").read_text("utf-8"))


@lru_cache(maxsize=1)
def topics() -> dict[str, dict[str, list[str]]]:
    """The first eight topics (`V1_TOPICS`), as before the topic set grew: the shipped judge
    benchmark and the main job were generated from these. `all_topics()` has every topic."""
    return {k: v for k, v in all_topics().items() if k in V1_TOPICS}


def describe(c: dict[str, Any]) -> str:
    """The instruction sentence for a constraint, as it appears in the prompt."""
    k = c["kind"]
    if k == "max_words":
        return f"Use at most {c['n']} words."
    if k == "min_words":
        return f"Use at least {c['n']} words."
    if k == "include_keywords":
        return "Include the words " + " and ".join(f'"{w}"' for w in c["keywords"]) + "."
    if k == "forbidden_words":
        return "Do not use the word " + " or ".join(f'"{w}"' for w in c["words"]) + "."
    if k == "bullets":
        return f"Answer with exactly {c['n']} bullet points, each on its own line starting with '- '."
    if k == "json_keys":
        return (
            "Answer only with a JSON object that has the keys " + ", ".join(f'"{x}"' for x in c["keys"]) + "."
        )
    if k == "lowercase":
        return "Write everything in lowercase letters; no capital letters at all."
    if k == "uppercase":
        return "Write everything in capital letters."
    if k == "language":
        return f"Write your answer in {LANGUAGE_NAMES[c['lang']]} only."
    if k == "ends_with":
        return f'End your answer with the exact phrase "{c["phrase"]}"'
    if k == "paragraphs":
        return f"Write exactly {c['n']} paragraphs separated by blank lines."
    if k == "no_commas":
        return "Do not use any commas."
    if k == "title":
        return "Give your answer a title wrapped in double angular brackets, like <<my title>>."
    raise ValueError(f"unknown constraint kind {k!r}")


def _constraint(kind: str, topic: str, rng: random.Random) -> dict[str, Any]:
    """One seeded constraint of `kind`; an unknown kind or topic is the caller's input, so it is
    a user error naming the choices, not a KeyError from deep inside."""
    from selflab.errors import SelflabError

    if kind not in CONSTRAINT_KINDS:
        raise SelflabError(f"unknown constraint kind {kind!r}", f"choose from {', '.join(CONSTRAINT_KINDS)}")
    if topic not in all_topics():
        raise SelflabError(f"unknown topic {topic!r}", f"choose from {', '.join(sorted(all_topics()))}")
    t = all_topics()[topic]
    if kind == "max_words":
        return {"kind": kind, "n": rng.choice([25, 30, 40, 50])}
    if kind == "min_words":
        return {"kind": kind, "n": rng.choice([40, 50, 60])}
    if kind == "include_keywords":
        return {"kind": kind, "keywords": rng.sample(t["keywords"], 2)}
    if kind == "forbidden_words":
        return {"kind": kind, "words": [rng.choice(t["keywords"])]}
    if kind == "bullets":
        return {"kind": kind, "n": rng.choice([2, 3, 4, 5])}
    if kind == "json_keys":
        return {"kind": kind, "keys": list(rng.choice(JSON_KEYS))}
    if kind == "language":
        return {"kind": kind, "lang": rng.choice(["fr", "es", "de"])}
    if kind == "ends_with":
        return {"kind": kind, "phrase": rng.choice(END_PHRASES)}
    if kind == "paragraphs":
        return {"kind": kind, "n": rng.choice([2, 3, 4])}
    return {"kind": kind}


def _sents(topic: str, rng: random.Random, k: int | None = None, lang: str = "en") -> list[str]:
    pool = list(all_topics()[topic][lang])
    rng.shuffle(pool)
    return pool if k is None else pool[:k]


def _fit_words(sentences: list[str], limit: int) -> list[str]:
    out: list[str] = []
    for s in sentences:
        if len(words(" ".join([*out, s]))) > limit:
            break
        out.append(s)
    return out


def _other_topic(topic: str, rng: random.Random) -> str:
    return rng.choice([t for t in topics() if t != topic])


def respond(task: Task, rng: random.Random, mode: ResponseMode = "correct") -> str:
    """A response to an instruction task in the requested mode (see module docstring)."""
    topic: str = task.meta["topic"]
    (c,) = task.params["constraints"]
    k = c["kind"]
    if mode == "off":
        # Another topic, written in a way that breaks this constraint.
        other = _other_topic(topic, rng)
        text = " ".join(_sents(other, rng, 6))
        if k == "max_words":
            text = " ".join(_sents(other, rng) * 2)
        elif k == "min_words":
            text = _sents(other, rng, 1)[0]
        elif k == "forbidden_words":
            text = text + f" It has nothing to do with {c['words'][0]}."
        elif k == "lowercase":
            text = text.upper()
        elif k == "no_commas":
            text = text.replace(". ", ", and ", 1)
        elif k == "title":
            text = text.replace("<<", "").replace(">>", "")
        return text
    sub = mode == "subtle"
    if k == "max_words":
        s = _sents(topic, rng)
        fit = _fit_words(s, c["n"])
        if not sub:
            return " ".join(fit)
        extra = s[len(fit)]
        over = " ".join([*fit, extra])
        return over
    if k == "min_words":
        s = _sents(topic, rng)
        fit = _fit_words(s, c["n"] - 1)
        if sub:
            return " ".join(fit)
        return " ".join(s)
    if k == "include_keywords":
        kws = c["keywords"]
        s = _sents(topic, rng)
        need = kws[:1] if sub else kws
        # Same whole-word test as the verifier, so a built reference never fails its own check.
        chosen = [next(x for x in s if contains_term(x, kw)) for kw in need]
        if sub and contains_term(chosen[0], kws[1]):
            # that sentence holds both keywords: take one with only one, or take the other out
            a, b = kws[0], kws[1]
            only = [x for x in s if contains_term(x, a) != contains_term(x, b)]
            chosen = only[:1] or [re.sub(rf"(?i)\b{re.escape(b)}\b", "it", chosen[0])]
        rest = [x for x in s if x not in chosen and not any(contains_term(x, kw) for kw in kws)][:2]
        out = list(dict.fromkeys([*chosen, *rest]))
        rng.shuffle(out)
        return " ".join(out)
    if k == "forbidden_words":
        w = c["words"][0]
        s = _sents(topic, rng)
        clean = [x for x in s if not contains_term(x, w)][:4]
        if sub:
            dirty = next(x for x in s if contains_term(x, w))
            clean = [*clean[:3], dirty]
        return " ".join(clean)
    if k == "bullets":
        n = c["n"] + (rng.choice([-1, 1]) if sub else 0)
        s = _sents(topic, rng, n)
        return "\n".join(f"- {x}" for x in s)
    if k == "json_keys":
        keys = list(c["keys"])
        if sub:
            keys = keys[:-1]
        s = _sents(topic, rng)
        obj = {key: s[i] for i, key in enumerate(keys)}
        if keys and keys[0] in ("title", "name", "topic"):
            obj[keys[0]] = topic.capitalize()
        return json.dumps(obj, ensure_ascii=False)
    if k == "lowercase":
        text = " ".join(_sents(topic, rng, 4)).lower()
        if sub:
            ws = text.split(" ")
            i = rng.randrange(len(ws))
            ws[i] = ws[i].capitalize()
            text = " ".join(ws)
        return text
    if k == "uppercase":
        text = " ".join(_sents(topic, rng, 4)).upper()
        if sub:
            ws = text.split(" ")
            i = rng.randrange(len(ws))
            ws[i] = ws[i].lower()
            text = " ".join(ws)
        return text
    if k == "language":
        foreign = _sents(topic, rng, 3, lang=c["lang"])
        if sub:
            text = " ".join([foreign[0], *_sents(topic, rng, 3)])
            # short English sentences can lose the stopword count to one foreign sentence
            return text if not task.check(text) else " ".join([foreign[0], *all_topics()[topic]["en"]])
        return " ".join(foreign)
    if k == "ends_with":
        body = " ".join(_sents(topic, rng, 3))
        phrase = c["phrase"]
        if sub:
            phrase = phrase.rstrip("?.!") + (" today." if not phrase.endswith("today.") else " now.")
        return f"{body} {phrase}"
    if k == "paragraphs":
        n = c["n"] - 1 if sub else c["n"]
        s = _sents(topic, rng, 2 * n)
        return "\n\n".join(" ".join(s[2 * i : 2 * i + 2]) for i in range(n))
    if k == "no_commas":
        s = _sents(topic, rng, 4)
        if sub:
            s[1] = "Indeed, " + s[1][0].lower() + s[1][1:]
        return " ".join(s)
    if k == "title":
        body = " ".join(_sents(topic, rng, 3))
        title = f"All about {topic}"
        return f"{title}\n\n{body}" if sub else f"<<{title}>>\n\n{body}"
    raise ValueError(f"unknown constraint kind {k!r}")


def topic_pool(pool: str | Sequence[str] | None = None) -> tuple[str, ...]:
    """Sorted topic names: None/"all" = every shipped topic, "v1" = the main job's eight, or a list."""
    names = all_topics()
    if pool is None or pool == "all":
        return tuple(sorted(names))
    if pool == "v1":
        return V1_TOPICS
    chosen = tuple(sorted(pool))
    unknown = [t for t in chosen if t not in names]
    if unknown or not chosen:
        from selflab.errors import SelflabError

        raise SelflabError(f"unknown or no topics {unknown}", f"choose from {', '.join(sorted(names))}")
    return chosen


def _draw(kind: str, rng: random.Random, names: Sequence[str], task_id: str) -> Task | None:
    """One task of `kind` on a random topic, or None when its built reference fails its own
    verifier (a gap in the topic data; tests over every topic and kind keep this at zero)."""
    topic = rng.choice(list(names))
    c = _constraint(kind, topic, rng)
    task = Task(
        id=task_id,
        kind="instruction",
        prompt=f"Write a short text about {topic}. {describe(c)}",
        reference="",
        answer=None,
        verifier="instructions",
        params={"constraints": [c]},
        meta={"topic": topic, "constraint": kind},
    )
    reference = respond(task, random.Random(rng.random()), "correct")
    if not task.check(reference):
        return None
    return task.model_copy(update={"reference": reference})


def attach_constraint(task_id: str, request: str, kind: str, topic: str, seed: int) -> Task:
    """A task from someone else's writing request (a model-written one, in the generated-data
    loop): the request, then one seeded constraint of `kind` drawn as for the shipped tasks
    (keywords come from `topic`). No reference is built: the request may ask for anything, so
    only the verifier can say what passes."""
    c = _constraint(kind, topic, random.Random(seed))
    return Task(
        id=task_id,
        kind="instruction",
        prompt=f"{request.strip()} {describe(c)}",
        reference="",
        verifier="instructions",
        params={"constraints": [c]},
        meta={"topic": topic, "constraint": kind, "generated": True},
    )


def instruction_task(kind: str, seed: int, pool: str | Sequence[str] | None = "v1") -> Task | None:
    """One seeded draw of an instruction task of `kind` (None: see `_draw`)."""
    return _draw(kind, random.Random(seed), topic_pool(pool), f"instr-{seed}-0")


def instruction_tasks(
    n: int,
    seed: int = 0,
    kinds: tuple[str, ...] = CONSTRAINT_KINDS,
    pool: str | Sequence[str] | None = "v1",
) -> list[Task]:
    """`n` instruction tasks cycling through constraint `kinds` over the topic `pool`; each
    reference response is built with `respond(..., "correct")` and verified, and a draw whose
    reference fails is drawn again (deterministically). The default pool is "v1" (the eight
    topics the shipped judge benchmark was generated from, so it stays reproducible); the loops'
    splits ask for "all"."""
    from selflab.errors import SelflabError

    bad = [k for k in kinds if k not in CONSTRAINT_KINDS]
    if bad:
        raise SelflabError(f"unknown constraint kinds {bad}", f"choose from {', '.join(CONSTRAINT_KINDS)}")
    rng = random.Random(seed)
    names = topic_pool(pool)
    out: list[Task] = []
    for _ in range(50 * n):
        if len(out) == n:
            break
        task = _draw(kinds[len(out) % len(kinds)], rng, names, f"instr-{seed}-{len(out)}")
        if task is not None:
            out.append(task)
    if len(out) < n:  # pragma: no cover - only with broken topic data
        raise SelflabError(f"could not build {n} instruction tasks", "check the topic data")
    return out
