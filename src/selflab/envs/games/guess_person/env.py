"""Guess the person: a guesser asks yes/no questions about a secret person of the knowledge graph
and guesses the name. With one player the answers come from the graph by code (always right);
with two players seat 1 is the answerer (an LLM or a scripted agent), shown the person's facts,
and may also be asked free-text questions."""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any, ClassVar

from selflab.envs.core import Hidden, ParseError, RuleViolation, TextEnv
from selflab.envs.games.guess_person.instances import GuessInstance, generate
from selflab.envs.games.guess_person.questions import (
    ANSWERS,
    CATEGORICAL,
    YEARS,
    Query,
    QuestionError,
    answer,
    parse_query,
    vocabulary,
)
from selflab.envs.grammar import alts
from selflab.envs.words import tokens
from selflab.errors import ConfigError
from selflab.kg import CONTINENTS, ERA_NAMES, FIELDS, Person, find_person, load_people, normalize_name

_TEMPLATE = Path(__file__).with_name("rules.txt").read_text(encoding="utf-8")
PASS = "PASS"
GUESSER, ANSWERER = 0, 1
SHOW_POOL_MAX = 60
_ACTION_RE = re.compile(r"^(ask|guess|pass)\b\s*:?\s*(.*)$", re.IGNORECASE | re.DOTALL)
_ANSWERS = {
    ("yes",): "yes", ("y",): "yes", ("true",): "yes",
    ("no",): "no", ("n",): "no", ("false",): "no",
    ("unknown",): "unknown", ("i", "don't", "know"): "unknown", ("don't", "know"): "unknown",
    ("i", "dont", "know"): "unknown", ("not", "sure"): "unknown", ("unsure",): "unknown",
}  # fmt: skip
TITLES = frozenset(
    {"sir", "dame", "dr", "doctor", "mr", "mrs", "ms", "miss", "lord", "lady", "prof", "professor"}
)


def build_rules(llm_answerer: bool) -> str:
    """The rules text with the vocabularies filled in."""
    free = (
        "With this answerer you may also ask free-text yes/no questions: ACTION: ASK Did this person write novels?"
        if llm_answerer
        else "Only the structured questions above can be answered."
    )
    answerer = (
        "\nAnswerer: you are shown the person's facts; answer each question truthfully with one line:\n"
        "ACTION: yes   or   ACTION: no   or   ACTION: unknown\n"
        "The answerer scores what the guesser scores, times the share of its answers to structured\n"
        "questions that match the records: help the guesser find the person, truthfully.\n"
        if llm_answerer
        else ""
    )
    return (
        _TEMPLATE.replace("<<<CONTINENTS>>>", "|".join(CONTINENTS))
        .replace("<<<FIELDS>>>", "|".join(FIELDS))
        .replace("<<<ERAS>>>", "|".join(ERA_NAMES))
        .replace("<<<OCCUPATIONS>>>", ", ".join(vocabulary("occupation")))
        .replace("<<<COUNTRIES>>>", ", ".join(vocabulary("nationality")))
        .replace("<<<FREE_TEXT>>>", free)
        .replace("<<<ANSWERER>>>", answerer)
    )


def parse_answer(text: str) -> str:
    """yes / no / unknown from an answerer's reply: the WHOLE answer must be one of these (or a
    listed synonym); "no idea" or "yes and no" are refused, not read by their first word."""
    word = _ANSWERS.get(tuple(tokens(text)))
    if word is None:
        raise ParseError(f"answer with exactly yes, no or unknown, got {text.strip()[:60]!r}")
    return word


class GuessPersonEnv(TextEnv):
    """Twenty-questions over the knowledge graph.

    `players=1`: the env answers by code. `players=2`: seat 1 answers. `max_questions` is the
    turn budget (questions plus guesses); `pool` samples that many candidates per episode (listed
    to the guesser when at most 60); `field` restricts candidates to one field; `person` fixes
    the secret person.
    """

    action_format = "ACTION: ASK <question>   or   ACTION: GUESS <full name>"
    min_players: ClassVar[int] = 1
    max_players: ClassVar[int] = 2

    def __init__(
        self,
        players: int = 1,
        *,
        max_questions: int = 20,
        pool: int | None = None,
        field: str | None = None,
        person: str | None = None,
        show_pool: bool | None = None,
        error_budget: int = 3,
    ) -> None:
        super().__init__(players, error_budget=error_budget, max_turns=2 * max_questions + 2)
        if max_questions < 1:
            raise ConfigError(
                f"max_questions must be at least 1, got {max_questions}", "pass max_questions=20"
            )
        self.max_questions = max_questions
        self.pool_size = pool
        self.field = field
        self.person_option = person
        self.show_pool_option = show_pool
        self.llm_answerer = players == 2
        self.rules = build_rules(self.llm_answerer)
        generate(random.Random(0), pool=pool, field=field, person=person)  # fail on bad options now
        self.instance: GuessInstance | None = None
        self.secret: Person | None = None
        self.pool: list[Person] = []
        self.turns_used = 0
        self.qa: list[dict[str, Any]] = []
        self.wrong_guesses: list[str] = []
        self.pending: dict[str, Any] | None = None

    # ------------------------------------------------------------------ setup and views

    def setup(self) -> None:
        inst = generate(
            self.rng,
            pool=self.pool_size,
            field=self.field,
            person=self.person_option,
            id=f"guess-seed{self.seed}",
        )
        by_name = {p.name: p for p in load_people()}
        self.instance = inst
        self.secret = by_name[inst.secret]
        self.pool = [by_name[n] for n in inst.pool]
        self.turns_used = 0
        self.qa = []
        self.wrong_guesses = []
        self.pending = None
        self.max_turns = 2 * self.max_questions + 2
        self._info.update(
            {"instance": inst.id, "pool_size": len(self.pool), "max_questions": self.max_questions}
        )
        show = self.show_pool_option if self.show_pool_option is not None else len(self.pool) <= SHOW_POOL_MAX
        scope = f" in {self.field}" if self.field else ""
        text = f"The secret person is one of {len(self.pool)} well-known people{scope}."
        if show:
            text += " The candidates: " + "; ".join(p.name for p in self.pool) + "."
        text += f" You have {self.max_questions} turns (questions and guesses)."
        self.announce(text, type="setup")
        if self.llm_answerer:
            self.tell(
                ANSWERER, f"You are the answerer. The secret person:\n{self.secret.card()}", type="secret"
            )

    def current_player(self) -> int:
        return ANSWERER if self.pending is not None else GUESSER

    def state_text(self, player: int) -> str:
        if player == ANSWERER:
            assert self.pending is not None
            # The facts are repeated every turn so they survive context trimming of old turns.
            return (
                f"The secret person:\n{self._secret.card()}\n"
                f"Question: {self.pending['question']}\nAnswer yes, no or unknown about {self._secret.name}."
            )
        left = self.max_questions - self.turns_used
        return (
            f"Turns used: {self.turns_used} of {self.max_questions} ({left} left). Ask a question or guess."
        )

    def state(self, player: int) -> dict[str, Any]:
        if player == ANSWERER:
            p = self.pending or {}
            return {
                "role": "answerer",
                "person": self._secret.name,
                "question": p.get("question"),
                "query": p.get("query"),
            }
        return {
            "role": "guesser",
            # "truth" (the graph's answer) is hidden from the guesser: with an answerer seat it can
            # differ from the answer given, and would tell the guesser about the secret person.
            "qa": [{k: v for k, v in x.items() if k != "truth"} for x in self.qa],
            "wrong_guesses": list(self.wrong_guesses),
            "turns_used": self.turns_used,
            "max_questions": self.max_questions,
            "pool": [p.name for p in self.pool],
        }

    def move_grammar(self, player: int) -> str:
        """Answerer: yes, no or unknown. Guesser: ASK with a structured question (the closed
        vocabularies, any year, any initial) or GUESS with a candidate's name. Free-text questions
        of the answerer variant are legal but not offered by the grammar (a free question that
        starts like a structured one could be malformed)."""
        if player == ANSWERER:
            return "move: " + alts(ANSWERS)
        questions = [Query(a, v).text() for a in CATEGORICAL for v in vocabulary(a)]
        questions += ["alive", "alive = no", "nobel_prize", "nobel_prize = no"]
        questions += [f"name_starts_with {c}" for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"]
        return (
            'move: "ASK " question | "GUESS " name\n'
            f"question: {alts(questions)} | YEARQ YEAR\n"
            f"YEARQ: {alts(f'{a} ' for a in YEARS)}\nYEAR: /[1-9][0-9]{{0,3}}( BCE)?/\n"
            f"name: {alts(p.name for p in self.pool)}"
        )

    def hidden_values(self, player: int) -> list[Hidden]:
        """The guesser must not learn the secret person, nor the graph's true answers (with an
        answerer seat they can differ from the answers given). The name is one of the listed
        candidates, so it is checked in the state (outside candidate lists) and by key."""
        if player == ANSWERER:
            return []
        return [
            Hidden("secret person", self._secret.name, text=False, keys=("person", "secret")),
            Hidden("truth labels", None, text=False, keys=("truth",)),
        ]

    def legal_actions(self, player: int) -> list[str] | None:
        return list(ANSWERS) if player == ANSWERER else None

    @property
    def _secret(self) -> Person:
        if self.secret is None:
            raise RuntimeError("call reset() first")
        return self.secret

    # ------------------------------------------------------------------ rules

    def apply(self, player: int, action: str) -> str:
        if player == ANSWERER:
            return self._apply_answer(action)
        text = action.strip().strip("`*\"' ")
        match = _ACTION_RE.match(text)
        if match is None:
            raise ParseError(f"expected 'ASK <question>' or 'GUESS <full name>', got {text[:80]!r}")
        verb, rest = match.group(1).upper(), match.group(2).strip()
        if verb == PASS:
            self.turns_used += 1
            self.tell(GUESSER, "A turn was wasted.", type="answer")
            self._check_budget()
            return PASS
        if verb == "GUESS":
            return self._guess(rest)
        return self._ask(rest)

    def _ask(self, question: str) -> str:
        question = question.strip().strip("\"'").strip()
        if not question:
            raise ParseError("ASK needs a question, e.g. ASK field = music")
        try:
            query = parse_query(question)
        except QuestionError as err:
            raise ParseError(str(err)) from err
        if query is None and not self.llm_answerer:
            raise ParseError(
                f"free-text questions cannot be answered here ({question[:60]!r}); "
                "use a structured question such as 'field = music', 'born_before 1900' or 'nationality = France'"
            )
        self.turns_used += 1
        shown = query.text() if query is not None else question[:200]
        if self.llm_answerer:
            self.pending = {"question": shown, "query": None if query is None else query.to_dict()}
            self.announce(f"Question {self.turns_used}: {shown}", type="question", sender=GUESSER)
            return f"ASK {shown}"
        assert query is not None
        reply = answer(self._secret, query)
        self.qa.append({"question": shown, "query": query.to_dict(), "answer": reply, "truth": reply})

        self.tell(GUESSER, f"Question {self.turns_used}: {shown} -> {reply}", type="answer")
        self._check_budget()
        return f"ASK {shown}"

    def _apply_answer(self, action: str) -> str:
        assert self.pending is not None
        reply = parse_answer(action)
        q = self.pending["query"]
        truth = answer(self._secret, Query(q["attribute"], q["value"])) if q is not None else None
        self.qa.append({"question": self.pending["question"], "query": q, "answer": reply, "truth": truth})
        self.pending = None
        self.announce(f"Answer: {reply}", type="answer", sender=ANSWERER)
        self._check_budget()
        return reply

    def _resolve(self, name: str) -> Person | None:
        """The person a guess names, matched against the candidates: full name or alias (titles
        such as "Sir" or "Dr." aside), else a last name unique in the pool; None if nobody. The
        whole guess must be the name: "maybe Einstein" names nobody."""
        found = find_person(name)
        if found is None:
            words = normalize_name(name).split()
            while words and words[0] in TITLES:
                words = words[1:]
            found = find_person(" ".join(words)) if words else None
        if found is not None:
            return found
        key = normalize_name(name)
        if not key:
            return None
        last = [p for p in self.pool if normalize_name(p.name).split()[-1] == key]
        if len(last) > 1:
            raise RuleViolation(
                f"{name.strip()[:40]!r} could be {', '.join(p.name for p in last)}: guess with the full name"
            )
        return last[0] if last else None

    def _guess(self, name: str) -> str:
        name = name.strip().strip("\"'").rstrip(".!?").strip()
        if not name:
            raise ParseError("GUESS needs a name, e.g. GUESS Marie Curie")
        person = self._resolve(name)
        self.turns_used += 1
        shown = person.name if person is not None else name[:80]
        if person is not None and person.name == self._secret.name:
            self.announce(f"Guess {self.turns_used}: {shown} -> correct!", type="answer")
            self._end(True)
            return f"GUESS {shown}"
        self.wrong_guesses.append(shown)
        note = "" if person is not None else " (no such person in the game)"
        self.announce(f"Guess {self.turns_used}: {shown} -> wrong{note}.", type="answer")
        self._check_budget()
        return f"GUESS {shown}"

    def _check_budget(self) -> None:
        if not self._done and self.pending is None and self.turns_used >= self.max_questions:
            self._end(False)

    def default_action(self, player: int) -> str:
        return "unknown" if player == ANSWERER else PASS

    def on_turn_limit(self) -> None:
        self._end(False)

    # ------------------------------------------------------------------ scoring

    def score(self, success: bool) -> float:
        """1 - 0.5 * (turns used before the right guess) / max_questions on success, else 0."""
        return 1.0 - 0.5 * (self.turns_used - 1) / self.max_questions if success else 0.0

    def _end(self, success: bool) -> None:
        reward = self.score(success)
        answered = [x for x in self.qa if x["truth"] is not None]
        self._info.update(
            {
                "success": success,
                "person": self._secret.name,
                "turns_used": self.turns_used,
                "questions": len(self.qa),
                "wrong_guesses": list(self.wrong_guesses),
            }
        )
        if self.llm_answerer:
            self._info["answer_accuracy"] = (
                sum(x["answer"] == x["truth"] for x in answered) / len(answered) if answered else None
            )
            self._info["free_text_questions"] = sum(x["query"] is None for x in self.qa)
        reason = (
            f"guessed {self._secret.name} in {self.turns_used} turn(s)"
            if success
            else f"out of turns; the person was {self._secret.name}"
        )
        rewards = {p: reward for p in range(self.num_players)}
        if self.llm_answerer:
            # Shared scores alone would pay two copies of one model for a private code (answers that
            # ignore the question); the answerer's share is weighed by how truthful it was.
            accuracy = self._info["answer_accuracy"]
            rewards[ANSWERER] = reward * (1.0 if accuracy is None else accuracy)
        self.finish(rewards, reason=reason, winners=list(range(self.num_players)) if success else [])
