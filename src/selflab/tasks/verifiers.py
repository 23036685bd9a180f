"""Code verifiers: each takes a response and parameters and returns a `Verification`.

Model output is untrusted: every verifier parses defensively, never raises, and says why a
response failed. Verifiers are registered by name so tasks can be stored as plain data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from typing import Any

from selflab.tasks.text import contains_term, first_position, fold, invisible, numbers, word_tokens, words
from selflab.tasks.types import Verification

Verifier = Callable[[str, dict[str, Any]], Verification]
VERIFIERS: dict[str, Verifier] = {}

LANGUAGE_NAMES = {
    "en": "English",
    "fr": "French",
    "es": "Spanish",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
}


def register(name: str) -> Callable[[Verifier], Verifier]:
    def deco(fn: Verifier) -> Verifier:
        VERIFIERS[name] = fn
        return fn

    return deco


def run_verifier(name: str, response: str, params: dict[str, Any]) -> Verification:
    """Run a registered verifier. A non-string response or a crashing verifier is a failure, not
    an exception: callers check thousands of model outputs and must not die on one."""
    fn = VERIFIERS.get(name)
    if fn is None:
        return Verification(ok=False, reason=f"unknown verifier {name!r}")
    if not isinstance(response, str):
        return Verification(ok=False, reason="response is not text")
    try:
        return fn(response, params)
    except Exception as exc:  # noqa: BLE001 - a verifier bug must not crash an evaluation run
        return Verification(ok=False, reason=f"verifier {name} failed: {type(exc).__name__}: {exc}")


def _fail(reason: str) -> Verification:
    return Verification(ok=False, reason=reason)


def _pass(reason: str) -> Verification:
    return Verification(ok=True, reason=reason)


# --- answers with one correct value ---------------------------------------------------------------


@register("numeric")
def verify_numeric(response: str, params: dict[str, Any]) -> Verification:
    """The last number in the response is the answer (responses end with their result)."""
    found = numbers(response)
    if not found:
        return _fail("no number in the response")
    got = found[-1]
    want = float(params["answer"])
    tol = float(params.get("tol", 1e-6))
    if abs(got - want) <= tol:
        return _pass(f"final number {got:g} equals {want:g}")
    return _fail(f"final number {got:g} is not {want:g}")


@register("year")
def verify_year(response: str, params: dict[str, Any]) -> Verification:
    """The last 4-digit year (1000-2100) in the response must equal the answer."""
    years = [int(m) for m in re.findall(r"(?<!\d)(1\d{3}|20\d{2}|2100)(?!\d)", response)]
    if not years:
        return _fail("no year in the response")
    want = int(params["answer"])
    if years[-1] == want:
        return _pass(f"year {years[-1]} is correct")
    return _fail(f"year {years[-1]} is not {want}")


@register("mentions")
def verify_mentions(response: str, params: dict[str, Any]) -> Verification:
    """Names one accepted term and none of the rejected ones (so hedging over several answers
    does not pass)."""
    accept: list[str] = list(params["accept"])
    reject: list[str] = list(params.get("reject", []))
    hit = next((a for a in accept if contains_term(response, a)), None)
    if hit is None:
        return _fail(f"does not mention {accept[0]!r}")
    # A rejected name inside an accepted one that is present ("Santiago" in "Santiago de Chile")
    # is not a second answer.
    wrong = [
        r
        for r in reject
        if contains_term(response, r)
        and not any(contains_term(a, r) and contains_term(response, a) for a in accept)
    ]
    if wrong:
        return _fail(f"mentions {hit!r} but also {wrong[0]!r}")
    return _pass(f"mentions {hit!r}")


@register("choice")
def verify_choice(response: str, params: dict[str, Any]) -> Verification:
    """Pick one of two options: the option mentioned first (by any alias) is the answer."""
    correct: list[str] = list(params["correct"])
    other: list[str] = list(params["other"])
    pos_c = [p for p in (first_position(response, a) for a in correct) if p is not None]
    pos_o = [p for p in (first_position(response, a) for a in other) if p is not None]
    if not pos_c and not pos_o:
        return _fail("names neither option")
    if pos_c and (not pos_o or min(pos_c) < min(pos_o)):
        return _pass(f"chooses {correct[0]!r}")
    return _fail(f"chooses {other[0]!r}")


_SCALE = {
    "thousand": 1e-3,
    "million": 1.0,
    "millions": 1.0,
    "billion": 1e3,
    "billions": 1e3,
    "bn": 1e3,
    "b": 1e3,
}
_QUANTITY = re.compile(
    r"(-?\d[\d,]*(?:\.\d+)?)\s*(thousand|millions?|billions?|bn(?![a-z])|b(?![a-z]))?"
    r"(\s*(?:%|percent\b|per cent\b))?"
)


def _is_population(m: re.Match[str]) -> bool:
    """Not a share ("0.9%") and not a bare year ("(2023 estimate)", "as of 2024"): answers often
    add one after the quantity, and no country has 1,800 to 2,100 people or millions of them."""
    if m.group(3):
        return False
    digits = m.group(1).rstrip(",")
    return bool(m.group(2)) or not (re.fullmatch(r"\d{4}", digits) and 1800 <= int(digits) <= 2100)


@register("approx_millions")
def verify_approx_millions(response: str, params: dict[str, Any]) -> Verification:
    """A quantity in millions within a relative tolerance; understands '1.4 billion', '1.4bn',
    '68 million' and bare numbers (read as millions when below 10,000, else as a raw count). The
    last such quantity counts; shares and bare years are not quantities."""
    want = float(params["answer"])
    rel = float(params.get("rel_tol", 0.2))
    matches = [m for m in _QUANTITY.finditer(fold(response)) if _is_population(m)]
    if not matches:
        return _fail("no population figure in the response")
    m = matches[-1]
    value = float(m.group(1).replace(",", "") or 0)
    unit = m.group(2)
    got = value * _SCALE[unit] if unit else (value if value < 10_000 else value / 1e6)
    if abs(got - want) <= rel * want:
        return _pass(f"{got:g} million is within {rel:.0%} of {want:g} million")
    return _fail(f"{got:g} million is not within {rel:.0%} of {want:g} million")


# --- instruction following (IFEval style) ---------------------------------------------------------


@lru_cache(maxsize=1)
def stopwords() -> dict[str, frozenset[str]]:
    raw = json.loads(resources.files("selflab.tasks").joinpath("data/stopwords.json").read_text("utf-8"))
    return {lang: frozenset(ws) for lang, ws in raw.items()}


def detect_language(text: str) -> str:
    """Language code with the most stopword hits, or "unknown" with fewer than 2 hits. Crude but
    transparent, and good enough to tell which language a paragraph is written in."""
    tokens = word_tokens(text)
    best, best_hits = "unknown", 1
    for lang, sw in stopwords().items():
        hits = sum(1 for t in tokens if t in sw)
        if hits > best_hits:
            best, best_hits = lang, hits
    return best


def extract_json(text: str) -> Any:
    """Parse a JSON value from a response, allowing a ``` / ```json fence around it. Raises
    ValueError when it is not JSON."""
    s = "".join(ch for ch in text if not invisible(ch)).strip()  # a byte-order mark, say
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", s, flags=re.S | re.I)
    if fence:
        s = fence.group(1)
    return json.loads(s)


def bullet_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if re.match(r"^\s*[-*•]\s+\S", ln)]


def paragraphs(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]


# ASCII, fullwidth, small, ideographic and Arabic commas: a comma in any script is a comma.
COMMAS = (",", "\uff0c", "\ufe50", "\ufe51", "\u3001", "\u060c")


def check_constraint(response: str, c: dict[str, Any]) -> Verification:
    """One IFEval-style constraint. `c["kind"]` selects the rule; other keys are its arguments."""
    kind = c.get("kind")
    if kind == "max_words":
        n = len(words(response))
        return Verification(ok=n <= c["n"], reason=f"{n} words (at most {c['n']} allowed)")
    if kind == "min_words":
        n = len(words(response))
        return Verification(ok=n >= c["n"], reason=f"{n} words (at least {c['n']} required)")
    if kind == "include_keywords":
        missing = [k for k in c["keywords"] if not contains_term(response, k)]
        return Verification(
            ok=not missing, reason=f"missing keywords {missing}" if missing else "all keywords present"
        )
    if kind == "forbidden_words":
        present = [k for k in c["words"] if contains_term(response, k)]
        return Verification(
            ok=not present, reason=f"uses forbidden {present}" if present else "no forbidden words"
        )
    if kind == "bullets":
        n = len(bullet_lines(response))
        return Verification(ok=n == c["n"], reason=f"{n} bullet points ({c['n']} required)")
    if kind == "json_keys":
        try:
            value = extract_json(response)
        except (ValueError, RecursionError):
            return _fail("not valid JSON")
        if not isinstance(value, dict):
            return _fail("JSON is not an object")
        missing = [k for k in c["keys"] if k not in value]
        return Verification(
            ok=not missing, reason=f"JSON lacks keys {missing}" if missing else "JSON with all keys"
        )
    if kind == "lowercase":
        letters = any(ch.isalpha() for ch in response)
        ok = letters and response == response.lower()
        return Verification(ok=ok, reason="all lowercase" if ok else "not all lowercase")
    if kind == "uppercase":
        letters = any(ch.isalpha() for ch in response)
        ok = letters and response == response.upper()
        return Verification(ok=ok, reason="all uppercase" if ok else "not all uppercase")
    if kind == "language":
        got = detect_language(response)
        return Verification(ok=got == c["lang"], reason=f"detected language {got} ({c['lang']} required)")
    if kind == "ends_with":
        ok = fold(response).rstrip().endswith(fold(c["phrase"]))
        return Verification(
            ok=ok, reason="ends with the phrase" if ok else f"does not end with {c['phrase']!r}"
        )
    if kind == "paragraphs":
        n = len(paragraphs(response))
        return Verification(ok=n == c["n"], reason=f"{n} paragraphs ({c['n']} required)")
    if kind == "no_commas":
        n = sum(response.count(ch) for ch in COMMAS)
        return Verification(ok=n == 0, reason=f"{n} commas (none allowed)")
    if kind == "title":
        ok = re.search(r"<<[^<>\n]*[^\s<>][^<>\n]*>>", response) is not None  # not "<<  >>"
        return Verification(ok=ok, reason="has a <<title>>" if ok else "no <<title>>")
    return _fail(f"unknown constraint kind {kind!r}")


@register("instructions")
def verify_instructions(response: str, params: dict[str, Any]) -> Verification:
    """All constraints must hold; the reason lists each failing one."""
    results = [(c.get("kind"), check_constraint(response, c)) for c in params["constraints"]]
    failed = [f"{k}: {v.reason}" for k, v in results if not v.ok]
    if failed:
        return _fail("; ".join(failed))
    return _pass("; ".join(f"{k}: {v.reason}" for k, v in results))
