"""Move grammars: each game declares, for the player to move at this turn, the grammar of a legal
action, so a constrained decoder (llguidance in our engine, vLLM or llama.cpp servers) can only
write moves the game can read.

A game implements `move_grammar(player)` and returns Lark rules that define `move` (or None when
it declares none); `TextEnv.action_grammar(player)` wraps them into the grammar of a whole reply,
`ACTION: <move>`, as a `Constraint`. The grammar is derived from the rules and the state (Perudo
offers only raising bids and, when there is a bid, the challenge); where a rule cannot be
expressed in a grammar (a spy question must not name a location), the game says so in
`GRAMMAR_GAPS` and a move that breaks it is still a `RuleViolation`, never a parse error.

Helpers here build the Lark text: `lit` quotes a literal, `alts` joins literals, `free_text`
is a one-line message that starts with a letter or digit (so the reader never sees it as empty).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from selflab.models.types import Constraint

PREFIX = "ACTION: "


def lit(text: str) -> str:
    """A Lark string literal (JSON escaping is valid Lark escaping for these characters)."""
    return json.dumps(text, ensure_ascii=False)


def alts(options: Iterable[str]) -> str:
    """Literal alternatives, duplicates dropped, order kept."""
    unique = list(dict.fromkeys(options))
    if not unique:
        raise ValueError("a grammar rule needs at least one alternative")
    return " | ".join(lit(o) for o in unique)


def free_text(max_chars: int, first: str = "A-Za-z0-9", min_chars: int = 1) -> str:
    """A regex terminal for one line of `min_chars` to `max_chars` characters that starts with a
    character of `first` (never stripped by the action reader, so the message is never empty);
    with `min_chars` > 1 it also ends with a letter, digit, ? or ! (the reader strips trailing
    quotes, dots and markdown, which must not shorten it below the minimum)."""
    if min_chars <= 1:
        return f"/[{first}][^\\n]{{0,{max_chars - 1}}}/"
    last = "A-Za-z0-9?!"
    return f"/[{first}][^\\n]{{{min_chars - 2},{max_chars - 2}}}[{last}]/"


def action_constraint(move_rules: str) -> Constraint:
    """The grammar of a whole reply: `ACTION: ` then `move` as defined by `move_rules`."""
    return Constraint.grammar(f"start: {lit(PREFIX)} move\n{move_rules.strip()}\n")
