"""The leak checker: plays seeded episodes and asserts that no value a game declares hidden from a
player (`TextEnv.hidden_values`) reaches that player, through text or structured state.

Why generic: a leak found game by game stays fixed only until the next game. The test suite runs
`check_variant` on every registered variant, so a new game is checked without extra work (and a
game that does not declare its hidden values fails the suite).

At every step, before the move, for every seat `p`:
- the text of every message `p` can see (the whole transcript from the value's `since` message on)
  must not contain the rendering of any `Hidden` value of `p` with `text=True`, as a whole phrase;
- the structured state `state(p)` must not contain the value (deep equality over dicts, lists and
  tuples), except as one item of a list of alternatives (a list holding it among at least two
  other distinct values: candidate lists are public), and must not hold it under any of its `keys`;
- for the player on turn, the observation text (`state_text`, error and prompt) is checked too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from selflab.envs.core import Hidden, TextEnv


@dataclass(frozen=True)
class Leak:
    env_id: str
    seed: int
    turn: int
    player: int
    hidden: str
    where: str


def render(value: Any) -> str:
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value)
    return str(value)


def _phrase_re(value: Any) -> re.Pattern[str]:
    """The rendering as a whole phrase; a list (dice, values) as a maximal run: "1 2 3" does not
    match inside "1 2 3 6"."""
    body = r"\W+".join(re.escape(w) for w in render(value).split())
    if isinstance(value, list | tuple):
        return re.compile(r"(?<![\w])(?<![0-9][ ,])" + body + r"(?![\w])(?![ ,][0-9])", re.I)
    return re.compile(r"(?<![\w])" + body + r"(?![\w])", re.I)


def _in_state(obj: Any, h: Hidden) -> str | None:
    """Where in `obj` the hidden value sits, or None."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in h.keys and v is not None and (h.value is None or _equal(v, h.value, strict=False)):
                return f"key {k!r}"
            if h.anywhere and h.value is not None and _equal(v, h.value):
                return f"key {k!r}"
            found = _in_state(v, h)
            if found:
                return f"{k}.{found}"
    elif isinstance(obj, list | tuple):
        if not h.anywhere:
            return next((f for f in (_in_state(v, h) for v in obj) if f), None)
        if h.value is not None and not isinstance(h.value, list | tuple):
            distinct = {repr(x) for x in obj}
            if repr(h.value) in distinct and len(distinct) >= 3:
                return None  # one of a list of alternatives: public
        for i, v in enumerate(obj):
            if h.value is not None and _equal(v, h.value):
                return f"[{i}]"
            found = _in_state(v, h)
            if found:
                return f"[{i}].{found}"
    return None


def _equal(a: Any, b: Any, strict: bool = True) -> bool:
    """Equality for the state search. Bare numbers and booleans only count under a declared key
    (`strict=False`): small integers are everywhere in a state."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    if strict and isinstance(a, bool | int | float):
        return False
    return type(a) is type(b) and a == b


@dataclass
class EpisodeCheck:
    """What one checked episode found: the leaks, how many (player, hidden value, moment) checks
    were made, and the steps played."""

    leaks: list[Leak]
    checks: int
    steps: int
    hidden_names: set[str]


def check_now(env: TextEnv, env_id: str = "", seed: int = 0, names: set[str] | None = None) -> list[Leak]:
    """The leaks at the current moment of a running episode (`names` collects the hidden values
    checked, for coverage reports)."""
    leaks: list[Leak] = []
    current = env.current_player()
    for p in range(env.num_players):
        hidden = env.hidden_values(p)
        if not hidden:
            continue
        texts = [("message", i, m.text) for i, m in enumerate(env.messages) if m.visible_to(p)]
        if p == current:
            texts.append(("observation", len(env.messages), env.state_text(p)))
        state = env.state(p)
        for h in hidden:
            if names is not None:
                names.add(h.name)
            if h.text and h.value is not None and render(h.value).strip():
                pattern = _phrase_re(h.value)
                for where, index, text in texts:
                    if index < h.since:
                        continue
                    if pattern.search(text):
                        leaks.append(Leak(env_id, seed, env.turn, p, h.name, f"{where}: {text[:160]!r}"))
                        break
            where = _in_state(state, h)
            if where:
                leaks.append(Leak(env_id, seed, env.turn, p, h.name, f"state {where}"))
    return leaks


def check_episode(env_id: str, agents: list[str], seed: int, max_steps: int = 2000) -> EpisodeCheck:
    """Play one seeded episode with the named agents (seat order) and collect every leak."""
    from selflab.envs.registry import make, make_agent

    env = make(env_id)
    assert isinstance(env, TextEnv)
    env.reset(seed=seed)
    seats = [make_agent(env_id, a, seed=seed * 31 + i) for i, a in enumerate(agents)]
    for i, agent in enumerate(seats):
        begin = getattr(agent, "begin", None)
        if begin is not None:
            begin(env.rules, i)
    leaks: list[Leak] = []
    names: set[str] = set()
    steps = checks = 0
    while not env.done and steps < max_steps:
        leaks += check_now(env, env_id, seed, names)
        checks += sum(len(env.hidden_values(p)) for p in range(env.num_players))
        player, obs = env.observe()
        env.step(seats[player].act(obs))
        steps += 1
    return EpisodeCheck(leaks, checks, steps, names)
