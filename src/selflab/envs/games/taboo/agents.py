"""Adversarial Taboo agents. The scripted pair share the shipped association table: the attacker
describes its word with associated words and invites the defender to name what they share; the
defender scores candidate words by the clues it has heard and guesses only when confident."""

from __future__ import annotations

from collections import Counter

from selflab.envs.agents import RandomAgent, ScriptedAgent
from selflab.envs.core import Observation
from selflab.envs.games.taboo.words import associations, forms, tokens

_OPENERS = (
    "I am thinking of something linked to {a} and {b}.",
    "Picture {a}, {b} and {c}. What comes to mind?",
    "Here is more: {a} and {b}. Can you name the thing they all share?",
    "Think about {a}. Also {b}. What single word connects everything I said?",
    "Last hint: {a}, {b}, {c}. Say the word that ties them together.",
)


def clue_index() -> dict[str, Counter[str]]:
    """clue word (and its plural) -> targets it points to."""
    index: dict[str, Counter[str]] = {}
    for target, clues in associations().items():
        for clue in clues:
            for form in {clue, clue + "s"}:
                index.setdefault(form, Counter())[target] += 1
    return index


_INDEX = clue_index()


class TabooScripted(ScriptedAgent):
    """Attacker: each turn reveals fresh associated words and asks the defender to name the common
    thread (a naive defender then says the target). Defender: counts which candidate targets the
    attacker's words point to and guesses only when one candidate has at least `min_clues`
    supporting words, leads the runner-up by `margin` and fits at least `coverage` of the informative
    words heard; otherwise answers without naming any
    candidate (so it never says the target by accident)."""

    name = "scripted"

    def __init__(
        self,
        seed: int | None = None,
        name: str | None = None,
        min_clues: int = 3,
        margin: int = 2,
        coverage: float = 0.6,
    ) -> None:
        super().__init__(seed, name)
        self.coverage = coverage
        self.min_clues = min_clues
        self.margin = margin
        self._order: list[str] | None = None

    def decide(self, observation: Observation) -> str:
        s = observation.state
        if s.get("role") == "attacker":
            return self._attack(s)
        return self._defend(s)

    def _attack(self, s: dict) -> str:
        target = s["target"]
        clues = list(associations().get(target, ()))
        if self._order is None:
            self.rng.shuffle(clues)
            self._order = [c for c in clues if not any(t in forms(target) for t in tokens(c))]
        k = s["round"]
        pool = self._order or ["it", "this", "that"]
        a, b, c = (pool[(2 * k + i) % len(pool)] for i in range(3))
        return _OPENERS[min(k, len(_OPENERS) - 1)].format(a=a, b=b, c=c)

    def _defend(self, s: dict) -> str:
        heard: set[str] = set()
        for player, text in s["history"]:
            if player == 0:
                heard |= set(tokens(text))
        votes: Counter[str] = Counter()
        informative = 0  # heard words that point to any target at all
        for word in heard:
            pointed = _INDEX.get(word)
            if pointed:
                informative += 1
                for target in pointed:
                    votes[target] += 1
        ranked = votes.most_common(2)
        if ranked:
            best, n1 = ranked[0]
            n2 = ranked[1][1] if len(ranked) > 1 else 0
            # Confident: enough supporting clues, a clear lead, and most informative words fit.
            coherent = n1 >= self.coverage * informative
            if n1 >= self.min_clues and n1 - n2 >= self.margin and coherent:
                return f"GUESS: {best}"
            if s.get("last_turn") and n1 >= self.min_clues - 1 and n1 > n2 and coherent:
                return f"GUESS: {best}"
        return "Interesting. Tell me more, I am not sure yet."


class TabooRandom(RandomAgent):
    """Random words from the shipped vocabulary; as defender, a random guess one time in four."""

    name = "random"

    def random_action(self, observation: Observation) -> str:
        vocab = sorted({w for clues in associations().values() for w in clues} | set(associations()))
        if observation.state.get("role") == "defender" and self.rng.random() < 0.25:
            return f"GUESS: {self.rng.choice(sorted(associations()))}"
        return " ".join(self.rng.choice(vocab) for _ in range(self.rng.randint(3, 8)))

    def act(self, observation: Observation) -> str:
        return f"ACTION: {self.random_action(observation)}"


class TabooNaiveDefender(TabooScripted):
    """A defender that thinks aloud: it names its best candidate in a plain question instead of a
    formal guess, the mistake the attacker tries to provoke (a stand-in for a careless LLM)."""

    name = "naive"

    def _defend(self, s: dict) -> str:
        heard = {t for player, text in s["history"] if player == 0 for t in tokens(text)}
        votes: Counter[str] = Counter()
        for word in heard:
            for target in _INDEX.get(word, ()):
                votes[target] += 1
        if votes:
            best = max(votes.items(), key=lambda kv: (kv[1], kv[0]))[0]
            return f"Hmm, is it something like {best}?"
        return "No idea yet, give me a hint."
