"""Guess-the-person baselines.

Scripted guesser: keeps the candidates that agree with the answers so far (with an LLM answerer,
answers can be wrong, so it keeps those with the fewest disagreements), asks the question whose
answers split them most evenly (highest answer entropy, i.e. greedy information gain), and
guesses once at most two candidates are left, or on its last turn.

Scripted answerer (seat 1 of the two-player variant): answers structured questions from the
graph by code, free-text ones "unknown".

Random: random structured questions, and a random candidate as a guess one time in six; as
answerer, a random answer.
"""

from __future__ import annotations

from selflab.envs.agents import RandomAgent, ScriptedAgent
from selflab.envs.core import Observation
from selflab.envs.games.guess_person.questions import (
    Query,
    answer,
    candidate_queries,
    parse_query,
    ranked_queries,
)
from selflab.kg import Person, find_person, load_people


def _people(names: list[str]) -> list[Person]:
    by_name = {p.name: p for p in load_people()}
    return [by_name[n] for n in names if n in by_name]


def remaining(state: dict) -> list[Person]:
    """Candidates (in pool order) with the fewest disagreements with the recorded answers."""
    pool = [p for p in _people(state["pool"]) if p.name not in set(state["wrong_guesses"])]
    asked = [
        (Query(x["query"]["attribute"], x["query"]["value"]), x["answer"])
        for x in state["qa"]
        if x.get("query") is not None
    ]
    if not pool:
        return []
    misses = {p.name: sum(answer(p, q) != a for q, a in asked) for p in pool}
    best = min(misses.values())
    return [p for p in pool if misses[p.name] == best]


def _answer_as_answerer(state: dict) -> str:
    person = find_person(state.get("person") or "")
    q = state.get("query")
    if person is None:
        return "unknown"
    if q is None:
        try:
            parsed = parse_query(state.get("question") or "")
        except ValueError:
            parsed = None
        if parsed is None:
            return "unknown"
        return answer(person, parsed)
    return answer(person, Query(q["attribute"], q["value"]))


class GuessPersonScripted(ScriptedAgent):
    name = "scripted"

    def decide(self, observation: Observation) -> str:
        s = observation.state
        if s.get("role") == "answerer":
            return _answer_as_answerer(s)
        cands = remaining(s)
        if not cands:
            return "PASS"
        left = s["max_questions"] - s["turns_used"]
        if len(cands) <= 2 or left <= 1:
            return f"GUESS {self.rng.choice(cands[:2]).name}"
        asked = {x["question"] for x in s["qa"]}
        scored = [(e, q) for e, q in ranked_queries(cands) if q.text() not in asked]
        if not scored:
            return f"GUESS {cands[0].name}"
        top = max(e for e, _ in scored)
        if top <= 0.0:
            return f"GUESS {self.rng.choice(cands).name}"
        best = [q for e, q in scored if e >= top - 1e-9]
        return f"ASK {self.rng.choice(best).text()}"


class GuessPersonRandom(RandomAgent):
    name = "random"

    def random_action(self, observation: Observation) -> str:
        s = observation.state
        pool = _people(s["pool"])
        if self.rng.random() < 1 / 6:
            return f"GUESS {self.rng.choice(pool).name}"
        return f"ASK {self.rng.choice(candidate_queries(pool)).text()}"
