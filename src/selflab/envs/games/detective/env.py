"""Detective: one player questions the suspects of a generated, provably solvable murder mystery and
accuses one. Suspects answer by code from their own facts (the murderer lies about its alibi)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from selflab.envs.core import Hidden, ParseError, RuleViolation, TextEnv
from selflab.envs.games.detective.instances import generate
from selflab.envs.games.detective.mystery import Claim, Mystery, is_solvable
from selflab.envs.grammar import alts
from selflab.envs.words import tokens
from selflab.errors import ConfigError

RULES = Path(__file__).with_name("rules.txt").read_text(encoding="utf-8")
TOPICS = ("alibi", "whereabouts <time>", "traits", "relation", "about <suspect>")
PASS = "PASS"
GIVE_UP = "GIVE UP"

_ASK_RE = re.compile(r"^(?:ask|question|interrogate)\b\s*:?\s*(.*)$", re.IGNORECASE | re.DOTALL)
_ACCUSE_RE = re.compile(r"^(?:i\s+)?accuse\b\s*:?\s*(.+)$", re.IGNORECASE | re.DOTALL)
_TIME_RE = re.compile(r"(?<![0-9])([0-9]{1,2})(?::([0-9]{2}))?(?![0-9])\s*(am|pm|h)?", re.IGNORECASE)
TITLES = {
    "col": "colonel", "dr": "doctor", "doc": "doctor", "prof": "professor", "capt": "captain",
    "cpt": "captain", "rev": "reverend", "revd": "reverend", "mme": "madame", "mr": "mister",
    "mrs": "missus", "ms": "miss", "lt": "lieutenant", "sgt": "sergeant", "st": "saint",
}  # fmt: skip
"""Abbreviated titles (with or without the dot) and their full forms: "Col. Hale" is "Colonel Hale"."""


def _norm(text: str) -> str:
    """A name as lower-case words with titles spelled out: "Dr Moreau", "dr. moreau" and
    "Doctor Moreau" all give "doctor moreau"."""
    return " ".join(TITLES.get(w, w) for w in tokens(text.replace(".", " ")))


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class DetectiveEnv(TextEnv):
    """A one-player murder mystery with a question budget.

    `mystery` plays a given case (a `Mystery` or its dict); otherwise each `reset(seed)` draws a
    new solvable case with `suspects` suspects from the episode seed.
    """

    rules = RULES
    action_format = "ACTION: ASK <suspect>: <topic>   or   ACTION: ACCUSE <suspect>"
    min_players: ClassVar[int] = 1
    max_players: ClassVar[int] = 1

    def __init__(
        self,
        players: int = 1,
        *,
        suspects: int = 4,
        max_questions: int = 15,
        mystery: Mystery | dict[str, Any] | None = None,
        error_budget: int = 3,
    ) -> None:
        super().__init__(players, error_budget=error_budget, max_turns=max_questions + 2)
        if not 3 <= suspects <= 5:
            raise ConfigError(f"a mystery takes 3 to 5 suspects, got {suspects}", "pass suspects=3, 4 or 5")
        if max_questions < 1:
            raise ConfigError(
                f"max_questions must be at least 1, got {max_questions}", "pass max_questions=15"
            )
        if isinstance(mystery, dict):
            mystery = Mystery.model_validate(mystery)
        if mystery is not None and not is_solvable(mystery):
            raise ConfigError(
                f"mystery {mystery.id!r} is not solvable: more than one suspect fits all the evidence",
                "add clues or statements that clear every innocent (see mystery.solutions)",
            )
        self.n_suspects = suspects
        self.max_questions = max_questions
        self.mystery_option = mystery
        self.mystery: Mystery | None = None
        self.questions_used = 0
        self.log: list[dict[str, Any]] = []
        self.claims: list[Claim] = []
        self.seen_traits: dict[str, dict[str, str]] = {}

    # ------------------------------------------------------------------ setup and views

    def setup(self) -> None:
        m = self.mystery_option or generate(
            self.n_suspects, self.rng, id=f"mystery-s{self.n_suspects}-seed{self.seed}"
        )
        self.mystery = m
        self.questions_used = 0
        self.log = []
        self.claims = []
        self.seen_traits = {}
        self.max_turns = self.max_questions + 2
        self._info.update({"mystery": m.id, "suspects": m.names, "max_questions": self.max_questions})
        lines = [
            f"CASE FILE. {m.victim} was found dead in the {m.crime_room} of {m.setting}, killed with {m.weapon}.",
            f"The murder happened at {m.crime_time}. The evening is accounted for at {', '.join(m.times)}.",
            f"Rooms: {', '.join(m.rooms)}.",
            "Suspects:",
            *[f"- {s.name}, the victim's {s.relation}. Rumour: this suspect {s.motive}." for s in m.suspects],
            "Clues found at the scene:",
            *[f"- {c.text}" for c in m.clues],
            f"You may ask up to {self.max_questions} questions.",
        ]
        self.announce("\n".join(lines), type="case")

    def current_player(self) -> int:
        return 0

    def state_text(self, player: int) -> str:
        m = self._m
        left = self.max_questions - self.questions_used
        text = (
            f"Questions used: {self.questions_used} of {self.max_questions}. Suspects: {', '.join(m.names)}."
        )
        if left <= 0:
            text += " No questions left: you must ACCUSE now."
        else:
            text += f" Topics: {', '.join(TOPICS)}. Times: {', '.join(m.times)}."
        return text

    def state(self, player: int) -> dict[str, Any]:
        """What the detective knows, structured: the case file and every answer so far."""
        m = self._m
        return {
            "suspects": m.names,
            "times": list(m.times),
            "rooms": list(m.rooms),
            "crime_time": m.crime_time,
            "crime_room": m.crime_room,
            "clues": [c.model_dump() for c in m.clues],
            "claims": [c._asdict() for c in self.claims],
            "traits": {k: dict(v) for k, v in self.seen_traits.items()},
            "log": [dict(e) for e in self.log],
            "questions_used": self.questions_used,
            "max_questions": self.max_questions,
        }

    def hidden_values(self, player: int) -> list[Hidden]:
        """The murderer and the room it really was in at the hour of the murder (its alibi lies).
        Names are public (the suspect list), so the culprit is checked by key, not by text."""
        m = self._m
        return [
            Hidden(
                "culprit", m.culprit, text=False, keys=("culprit", "murderer", "solution"), anywhere=False
            ),
            Hidden("the murderer's lie", None, text=False, keys=("lie_room", "true_room")),
        ]

    def legal_actions(self, player: int) -> list[str]:
        m = self._m
        accuse = [f"ACCUSE {n}" for n in m.names]
        if self.questions_used >= self.max_questions:
            return accuse
        asks = []
        for n in m.names:
            asks += [f"ASK {n}: alibi", f"ASK {n}: traits", f"ASK {n}: relation"]
            asks += [f"ASK {n}: whereabouts {t}" for t in m.times]
            asks += [f"ASK {n}: about {o}" for o in m.names if o != n]
        return asks + accuse

    def move_grammar(self, player: int) -> str:
        """ASK with a real suspect name and a topic of the list (only while questions are left), or
        ACCUSE with a real suspect name."""
        return "move: " + alts(self.legal_actions(player))

    @property
    def _m(self) -> Mystery:
        if self.mystery is None:
            raise RuntimeError("call reset() first")
        return self.mystery

    # ------------------------------------------------------------------ parsing

    def _suspect(self, text: str) -> str:
        """The suspect named in `text` (full name, or surname alone)."""
        key = _norm(text)
        for n in self._m.names:
            if key in (_norm(n), _norm(n).split()[-1]):
                return n
        raise RuleViolation(
            f"there is no suspect called {text.strip()[:40]!r}; the suspects are {', '.join(self._m.names)}"
        )

    def _time(self, text: str) -> str:
        match = _TIME_RE.search(text)
        if not match:
            raise ParseError(
                f"whereabouts needs a time, one of {', '.join(self._m.times)} (e.g. whereabouts 20:00)"
            )
        hour = int(match.group(1))  # at most two ASCII digits: bounded
        if (match.group(3) or "").lower() == "pm" and hour < 12:
            hour += 12
        t = f"{hour:02d}:{match.group(2) or '00'}"
        if t not in self._m.times:
            raise RuleViolation(
                f"no one was asked to account for {t}; the times are {', '.join(self._m.times)}"
            )
        return t

    def _parse_ask(self, action: str) -> tuple[str, str, str | None]:
        """(suspect, topic, argument) of an ASK action."""
        match = _ASK_RE.match(action)
        if match is None:
            raise ParseError(f"expected 'ASK <suspect>: <topic>' or 'ACCUSE <suspect>', got {action[:80]!r}")
        # Split at the first colon, comma or dash in plain Python (a lazy regex group followed by
        # optional spaces was quadratic on long inputs).
        rest = match.group(1)
        cut = re.search(r"[:,\-]", rest)
        if cut is None or not rest[: cut.start()].strip() or not rest[cut.end() :].strip():
            raise ParseError(
                f"expected 'ASK <suspect>: <topic>' (a colon after the name), got {action[:80]!r}"
            )
        who, topic = rest[: cut.start()], rest[cut.end() :].strip().lower().rstrip(".?!")
        suspect = self._suspect(who)
        words = topic.split()
        head = words[0] if words else ""
        if head in ("alibi", "alibi?"):
            return suspect, "alibi", None
        if head in ("traits", "trait", "appearance", "examine"):
            return suspect, "traits", None
        if head in ("relation", "relationship", "motive"):
            return suspect, "relation", None
        if head in ("whereabouts", "where", "location"):
            return suspect, "whereabouts", self._time(topic)
        if head == "about":
            other = self._suspect(topic[len("about") :])
            if other == suspect:
                raise RuleViolation(f"ask {suspect} about someone else")
            return suspect, "about", other
        raise ParseError(f"unknown topic {topic[:40]!r}; the topics are: {', '.join(TOPICS)}")

    # ------------------------------------------------------------------ rules

    def apply(self, player: int, action: str) -> str:
        text = action.strip().strip("`*\"' ").rstrip(".")
        upper = text.upper()
        if upper in (PASS, GIVE_UP):
            if upper == PASS:
                if self.questions_used >= self.max_questions:
                    raise RuleViolation("no questions left: PASS is not possible, ACCUSE a suspect")
                self.questions_used += 1
                self._record("pass", None, None, "a question was wasted")
                self.tell(
                    0,
                    f"A question was wasted ({self.max_questions - self.questions_used} left).",
                    type="answer",
                )
                return PASS
            self._end(None)
            return GIVE_UP
        accuse = _ACCUSE_RE.match(text)
        if accuse:
            suspect = self._suspect(accuse.group(1).strip().rstrip("."))
            self._end(suspect)
            return f"ACCUSE {suspect}"
        suspect, topic, arg = self._parse_ask(text)
        if self.questions_used >= self.max_questions:
            raise RuleViolation("no questions left: you must ACCUSE a suspect")
        self.questions_used += 1
        answer = self._answer(suspect, topic, arg)
        canonical = f"ASK {suspect}: {topic}" + (f" {arg}" if arg else "")
        self._record(topic, suspect, arg, answer)
        left = self.max_questions - self.questions_used
        self.tell(
            0,
            f"{suspect} ({topic}{' ' + arg if arg else ''}): {answer} [{left} question(s) left]",
            type="answer",
        )
        return canonical

    def _record(self, topic: str, suspect: str | None, arg: str | None, answer: str) -> None:
        self.log.append({"topic": topic, "suspect": suspect, "arg": arg, "answer": answer})

    def _answer(self, suspect: str, topic: str, arg: str | None) -> str:
        m = self._m
        if topic in ("alibi", "whereabouts"):
            time = m.crime_time if topic == "alibi" else str(arg)
            claim = m.claim(suspect, time)
            if claim not in self.claims:
                self.claims.append(claim)
            company = f"with {_join(list(claim.companions))}" if claim.companions else "alone"
            return f'"At {time} I was in the {claim.room}, {company}."'
        if topic == "traits":
            t = m.observed_traits(suspect)
            self.seen_traits[suspect] = dict(t)
            smokes = "smokes" if t["smokes"] == "yes" else "does not smoke"
            return f"You observe: {t['handedness']}-handed, {smokes}, {t['hair']} hair, {t['shoes']} shoes."
        if topic == "relation":
            return f'"I am the victim\'s {m.suspect(suspect).relation}."'
        if topic == "about":
            other = str(arg)
            seen = m.sightings(suspect, other)
            if not seen:
                return f'"I did not see {other} at any of the hours you ask about."'
            parts = [f"at {t} in the {room}" for t, room in seen]
            return f'"I was with {other} ' + ", and ".join(parts) + '."'
        raise AssertionError(topic)  # pragma: no cover

    def default_action(self, player: int) -> str:
        return PASS if self.questions_used < self.max_questions else GIVE_UP

    def on_turn_limit(self) -> None:
        self._end(None)

    # ------------------------------------------------------------------ scoring

    def score(self, correct: bool) -> float:
        """1 - 0.5 * questions_used / max_questions when the accusation is right, else 0."""
        return 1.0 - 0.5 * self.questions_used / self.max_questions if correct else 0.0

    def _end(self, accused: str | None) -> None:
        m = self._m
        correct = accused == m.culprit
        reward = self.score(correct)
        self._info.update(
            {
                "success": correct,
                "accused": accused,
                "culprit": m.culprit,
                "questions_used": self.questions_used,
                "solvable": is_solvable(m),
            }
        )
        if accused is None:
            reason = f"case closed unsolved; the murderer was {m.culprit}"
        elif correct:
            reason = f"{accused} is the murderer: solved with {self.questions_used} question(s)"
        else:
            reason = f"wrong accusation: {accused} is innocent, the murderer was {m.culprit}"
        self.finish({0: reward}, reason=reason, winners=[0] if correct else [])
