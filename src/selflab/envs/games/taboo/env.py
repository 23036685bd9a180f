"""Adversarial Taboo (SPAG, Cheng et al. 2024) as a two-player env with a rule-based outcome.

Player 0 is the attacker (knows the target word), player 1 the defender. They alternate one-line
messages, attacker first, for `rounds` rounds each.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

from selflab.envs.core import Hidden, ParseError, RuleViolation, TextEnv
from selflab.envs.games.taboo.words import hints_target, same_word, says_target, targets, tokens
from selflab.envs.grammar import free_text
from selflab.envs.words import clean_text, foreign_letter
from selflab.errors import ConfigError

RULES = Path(__file__).with_name("rules.txt").read_text(encoding="utf-8")
ATTACKER, DEFENDER = 0, 1
MAX_MESSAGE_CHARS = 300
SILENCE = "(says nothing)"
_PREFIX_RE = re.compile(r"^[\W_]*action[\W_]*[:=\-]\s*", re.IGNORECASE)
_GUESS_RE = re.compile(r"^[\W_]*guess[\W_]*[:=\-](.*)$", re.IGNORECASE | re.DOTALL)
MAX_GUESS_WORDS = 3


def parse_guess(text: str) -> str | None:
    """The guess of a message that STARTS with 'GUESS:' (the explicit protocol): the whole rest,
    lower-cased, articles kept for `same_word` to drop. None when the message is not a guess; a
    `ParseError` when the guess is empty or longer than `MAX_GUESS_WORDS` words (a guess names one
    word or a short phrase; "apple or maybe banana" is refused, not read as "apple")."""
    m = _GUESS_RE.match(text)
    if not m:
        return None
    words = tokens(m.group(1))
    if not words:
        raise ParseError("write the guess as 'GUESS: <word>'")
    if len(words) > MAX_GUESS_WORDS:
        raise ParseError(f"a guess is one word or a short phrase (at most {MAX_GUESS_WORDS} words)")
    return " ".join(words)


class TabooEnv(TextEnv):
    """`target` fixes the word; `instance` (int) indexes the sorted shipped word list; otherwise
    the target is drawn from the episode seed."""

    rules = RULES
    action_format = "ACTION: <your message>   (defender may instead write: ACTION: GUESS: <word>)"
    min_players: ClassVar[int] = 2
    max_players: ClassVar[int] = 2

    def __init__(
        self,
        players: int = 2,
        *,
        rounds: int = 5,
        target: str | None = None,
        instance: int | None = None,
        error_budget: int = 3,
    ) -> None:
        if rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {rounds}", "pass rounds=5")
        super().__init__(players, error_budget=error_budget, max_turns=2 * rounds)
        if instance is not None and not 0 <= instance < len(targets()):
            raise ConfigError(f"instance index {instance} is out of range", f"use 0..{len(targets()) - 1}")
        if target is not None and not target.strip():
            raise ConfigError("target is empty", "pass a word, e.g. target='apple'")
        self.rounds = rounds
        self.target_option = target.strip().lower() if target else None
        self.instance_option = instance
        self.target = ""
        self.history: list[tuple[int, str]] = []

    def setup(self) -> None:
        if self.target_option is not None:
            self.target = self.target_option
        elif self.instance_option is not None:
            self.target = targets()[self.instance_option]
        else:
            self.target = self.rng.choice(targets())
        self.history = []
        self._info.update({"target": self.target, "guess": None})
        self.announce(
            f"Adversarial Taboo: Player {ATTACKER} is the attacker, Player {DEFENDER} the defender; "
            f"{self.rounds} rounds each, attacker first.",
            type="setup",
        )
        self.tell(ATTACKER, f"The target word is '{self.target}'. Never say it yourself.", type="secret")

    def current_player(self) -> int:
        return self.turn % 2

    def state_text(self, player: int) -> str:
        rounds_left = self.rounds - self.turn // 2
        if player == ATTACKER:
            return (
                f"You are the ATTACKER. Target word: '{self.target}'. Make the defender say it; never say it "
                f"yourself. Round {self.turn // 2 + 1} of {self.rounds}."
            )
        return (
            f"You are the DEFENDER. Work out the attacker's secret word and guess it with 'GUESS: <word>' "
            f"(one guess only), and avoid saying it by accident. Rounds left, including this one: {rounds_left}."
        )

    def state(self, player: int) -> dict[str, Any]:
        return {
            "role": "attacker" if player == ATTACKER else "defender",
            "target": self.target if player == ATTACKER else None,
            "history": [[p, text] for p, text in self.history],
            "round": self.turn // 2,
            "rounds": self.rounds,
            "last_turn": self.turn >= self.max_turns - 2,
        }

    def move_grammar(self, player: int) -> str:
        """Free text, one line. The defender may guess with 'GUESS: ' and one to three words; its
        other messages may not start with G (so none is misread as a malformed guess). Not
        expressed: the attacker must not say the target word (a `RuleViolation`)."""
        if player == ATTACKER:
            return f"move: MESSAGE\nMESSAGE: {free_text(MAX_MESSAGE_CHARS)}"
        return (
            'move: MESSAGE | "GUESS: " WORD (" " WORD)~0..2\n'
            f"MESSAGE: {free_text(MAX_MESSAGE_CHARS, 'A-FH-Za-fh-z0-9')}\nWORD: /[A-Za-z]{{1,30}}/"
        )

    def hidden_values(self, player: int) -> list[Hidden]:
        """The defender must not be told the target word."""
        if player == ATTACKER:
            return []
        return [Hidden("target word", self.target, keys=("target",))]

    def apply(self, player: int, action: str) -> str:
        text = _PREFIX_RE.sub("", " ".join(clean_text(action).split()))[:MAX_MESSAGE_CHARS].strip()
        if not text:
            raise ParseError("the message is empty; write one line of text")
        letter = foreign_letter(text)
        if letter is not None:
            # Unreadable to the word matcher, so it could hide the target (or a probe for it).
            raise RuleViolation(f"write in plain Latin letters; {letter!r} is not one (rewrite the message)")
        if player == ATTACKER:
            if hints_target(text, self.target):
                raise RuleViolation(
                    "your message contains the target word (or a form, spelling or split of it); "
                    "rephrase without it"
                )
            self.history.append((player, text))
            self.announce(f"Attacker: {text}", type="chat", sender=player)
            return text
        guess = parse_guess(text)
        self.history.append((player, text))
        self.announce(f"Defender: {text}", type="chat", sender=player)
        if guess is not None:
            self._info["guess"] = guess
            if same_word(guess, self.target):
                self._end(DEFENDER, f"the defender guessed the target '{self.target}'")
            else:
                self._end(ATTACKER, f"the defender guessed '{guess}', but the target was '{self.target}'")
            return f"GUESS: {guess}"
        if says_target(text, self.target):
            self._end(ATTACKER, f"the defender said the target word '{self.target}'")
        return text

    def default_action(self, player: int) -> str:
        return SILENCE

    def on_turn_limit(self) -> None:
        self._info["result"] = "tie"
        self.finish(
            {ATTACKER: 0.0, DEFENDER: 0.0}, reason=f"no winner within {self.rounds} rounds", winners=[]
        )

    def _end(self, winner: int, reason: str) -> None:
        self._info["result"] = "attacker" if winner == ATTACKER else "defender"
        self.finish({winner: 1.0, 1 - winner: -1.0}, reason=reason, winners=[winner])
