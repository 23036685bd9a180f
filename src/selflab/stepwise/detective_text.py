"""How detective steps are read and written: the trait and statement vocabulary a step's reason
may use (regular expressions, defensive: model output), and the phrases the gold steps use."""

from __future__ import annotations

import re

HAIR = ("black", "brown", "blonde", "red", "grey")
MURDERER_SEGMENT = re.compile(  # "the murderer is left-handed" up to a comma, ';' or a conjunction
    r"\b(?:murderer|killer|culprit|clues?)\b.*?(?=[,;]|\b(?:and|but|while|whereas|however)\b|$)",
    re.IGNORECASE | re.DOTALL,
)
STATEMENT = re.compile(
    r"\b(?:says?|said|alibi|statements?|vouch\w*|saw|seen|claims?|claimed|witness\w*|with|together|testif\w*)\b",
    re.IGNORECASE,
)
RULE_OUT = re.compile(  # the verb within the first few words, so a reason's "clear" is no verb
    r"^\W*(?:[\w']+\s+){0,3}?(?:rules?\s+out|ruled\s+out|clear(?:s|ed)?|eliminat\w*|exclud\w*)\b\s*(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)
CONCLUDE = re.compile(
    r"(?:^(?P<a>.+?)\s+(?:is|must\s+be)\s+the\s+(?:murderer|killer|culprit)\b)"
    r"|(?:\bthe\s+(?:murderer|killer|culprit)\s+(?:is|must\s+be)\s+(?P<b>.+)$)",
    re.IGNORECASE,
)
NO_SMOKE = re.compile(
    r"\bnon[- ]?smok\w*|\b(?:does\s*not|doesn'?t|do\s*not|don'?t|never|not\s+a)\s+smok\w*", re.IGNORECASE
)
TRAIT_RES: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("handedness", "left", re.compile(r"\bleft[- ]?hand(?:ed)?\b", re.IGNORECASE)),
    ("handedness", "right", re.compile(r"\bright[- ]?hand(?:ed)?\b", re.IGNORECASE)),
    ("shoes", "muddy", re.compile(r"\bmud(?:dy)?\b", re.IGNORECASE)),
    ("shoes", "clean", re.compile(r"\bclean\b", re.IGNORECASE)),
    *(
        (
            "hair",
            v,
            re.compile(rf"\b{alt}[- ]?(?:hair(?:ed)?)\b|\bhair\s+(?:is\s+|was\s+)?{alt}\b", re.IGNORECASE),
        )
        for v, alt in (
            ("black", "black"),
            ("brown", "brown"),
            ("blonde", "blonde?"),
            ("red", "red"),
            ("grey", "gr[ae]y"),
        )
    ),
)


def cited_traits(text: str) -> dict[str, set[str]]:
    """trait -> the values `text` names for it ("does not smoke" is smokes=no)."""
    out: dict[str, set[str]] = {}
    if NO_SMOKE.search(text):
        out.setdefault("smokes", set()).add("no")
    if re.search(r"\bsmok\w*", NO_SMOKE.sub(" ", text), re.IGNORECASE):
        out.setdefault("smokes", set()).add("yes")
    for trait, value, pat in TRAIT_RES:
        if pat.search(text):
            out.setdefault(trait, set()).add(value)
    return out


def trait_phrase(trait: str, value: str) -> str:
    """How a suspect's trait is written in a step ("right-handed", "red hair")."""
    if trait == "handedness":
        return f"{value}-handed"
    if trait == "smokes":
        return "smokes" if value == "yes" else "does not smoke"
    return f"{value} {'hair' if trait == 'hair' else 'shoes'}"


def murderer_phrase(trait: str, value: str) -> str:
    if trait == "handedness":
        return f"is {value}-handed"
    if trait == "smokes":
        return "smokes" if value == "yes" else "does not smoke"
    return f"has {trait_phrase(trait, value)}"


def norm_words(text: str) -> str:
    return " ".join(re.findall(r"[a-z]+", text.lower()))


def first_suspect(text: str, names: list[str]) -> tuple[str, int] | None:
    """The suspect `text` names first (full name or surname, whole words) and where the name ends."""
    best: tuple[int, int, str] | None = None
    for n in names:
        for form in (n, n.split()[-1]):
            m = re.search(rf"\b{re.escape(form)}\b", text, re.IGNORECASE)
            if m and (best is None or m.start() < best[0] or (m.start() == best[0] and m.end() > best[1])):
                best = (m.start(), m.end(), n)
    return None if best is None else (best[2], best[1])


def trait_values(trait: str) -> tuple[str, ...]:
    return {"handedness": ("left", "right"), "smokes": ("yes", "no"), "shoes": ("muddy", "clean")}.get(
        trait, HAIR
    )
