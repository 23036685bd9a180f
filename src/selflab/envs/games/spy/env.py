"""The spy game (Spyfall-like): all players but the spy know the location; closed questions,
suspicion updates after each answer, a vote, and the spy's guess of the location.

Questions are free text; when one matches a question of the shipped bank (by text or keyword) the
env records which location attribute it asks about, so scripted players and analyses can check
answers against the truth. See rules.txt for the text players read.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any, ClassVar

from selflab.envs.core import Hidden, ParseError, RuleViolation, TextEnv
from selflab.envs.games.spy.locations import load_data, question_attribute
from selflab.envs.grammar import alts, free_text
from selflab.envs.reader import read_int
from selflab.envs.words import clean_text, find_word, foreign_letter, obfuscated_mentions, tokens
from selflab.errors import ConfigError

VERBS = ("ask", "answer", "suspect", "vote", "guess")


class SpyEnv(TextEnv):
    """Spy game for 3-8 players. `location`/`spy` fix the deal (tests, instances)."""

    min_players: ClassVar[int] = 3
    max_players: ClassVar[int] = 8
    action_format = "ACTION: <ask N question | answer yes/no | suspect N | vote N | guess location>"

    def __init__(
        self,
        players: int = 4,
        rounds: int = 1,
        suspicion: bool = True,
        num_locations: int | None = None,
        location: str | None = None,
        spy: int | None = None,
        error_budget: int = 2,
        max_turns: int | None = None,
    ) -> None:
        # Every move of a full game (questions, answers, suspicions, votes, the last guess) must fit
        # under the turn limit, or large tables would end at the limit, which the spy wins.
        full_game = rounds * players * (2 + (players if suspicion else 0)) + players + 1
        if max_turns is not None and max_turns < full_game:
            raise ConfigError(
                f"max_turns={max_turns} is shorter than a full game ({full_game} moves): the spy would "
                "win every game at the turn limit",
                f"pass max_turns >= {full_game}, or leave it unset",
            )
        super().__init__(players, error_budget=error_budget, max_turns=max_turns or max(400, full_game))
        data = load_data()
        all_names = [loc["name"] for loc in data["locations"]]
        if not 1 <= rounds <= 10:
            raise ConfigError(f"rounds must be 1..10, got {rounds}", "pass rounds=1")
        if num_locations is not None and not 2 <= num_locations <= len(all_names):
            raise ConfigError(
                f"num_locations must be 2..{len(all_names)}", f"pass num_locations up to {len(all_names)}"
            )
        if location is not None and location not in all_names:
            raise ConfigError(f"unknown location {location!r}", f"pick one of {', '.join(all_names)}")
        if spy is not None and not 0 <= spy < players:
            raise ConfigError(f"spy seat {spy} does not exist", f"pass spy between 0 and {players - 1}")
        self.rounds = rounds
        self.suspicion_enabled = suspicion
        self.num_locations = num_locations
        self.fixed_location = location
        self.fixed_spy = spy
        self.questions: dict[str, dict[str, Any]] = data["questions"]
        self.attributes: dict[str, set[str]] = {
            loc["name"]: set(loc["attributes"]) for loc in data["locations"]
        }
        self.all_locations = all_names
        self.locations = list(all_names)
        self._set_rules()

    def _set_rules(self) -> None:
        template = resources.files("selflab.envs.games.spy").joinpath("rules.txt").read_text()
        rule = (
            "After every answer, each player privately names the player it suspects most (suspect)."
            if self.suspicion_enabled
            else ""
        )
        self.rules = template.format(
            players=self.num_players,
            locations=", ".join(self.locations),
            rounds=self.rounds,
            suspicion_rule=rule,
            budget_plus_one=self.error_budget + 1,
            max_turns=self.max_turns,
        )

    # ------------------------------------------------------------------ deal

    def setup(self) -> None:
        if self.num_locations is not None:
            pool = self.rng.sample(self.all_locations, self.num_locations)
            if self.fixed_location is not None and self.fixed_location not in pool:
                pool[0] = self.fixed_location
            self.locations = sorted(pool)
        self._set_rules()
        self.location = self.fixed_location or self.rng.choice(self.locations)
        self.spy = self.fixed_spy if self.fixed_spy is not None else self.rng.randrange(self.num_players)
        self.ask_order = [p for _ in range(self.rounds) for p in range(self.num_players)]
        self.ask_index = 0
        self.phase = "ask"
        self.pending_question: dict[str, Any] | None = None
        self.suspect_queue: list[int] = []
        self.vote_queue: list[int] = []
        self.qa: list[dict[str, Any]] = []
        self.suspicion: dict[int, int | None] = {p: None for p in range(self.num_players)}
        self.suspicion_history: list[dict[str, int]] = []
        self.votes: dict[int, int] = {}
        self.spy_guess: str | None = None
        self.announce(f"Spy game with {self.num_players} players. One of you is the spy.")
        for p in range(self.num_players):
            if p == self.spy:
                self.tell(p, "You are the SPY. You do not know the location: find it without being caught.")
            else:
                self.tell(p, f"You are not the spy. The location is: {self.location}.")

    # ------------------------------------------------------------------ who acts

    def current_player(self) -> int:
        if self.phase == "ask":
            return self.ask_order[self.ask_index]
        if self.phase == "answer":
            assert self.pending_question is not None
            return self.pending_question["target"]
        if self.phase == "suspect":
            return self.suspect_queue[0]
        if self.phase == "vote":
            return self.vote_queue[0]
        return self.spy  # last_guess

    # ------------------------------------------------------------------ views

    def state(self, player: int) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "role": "spy" if player == self.spy else "citizen",
            "location": None if player == self.spy else self.location,
            "locations": list(self.locations),
            "questions": {a: e["question"] for a, e in self.questions.items()},
            # The truth of each answer depends on the location: the spy must not see it.
            "qa": [{k: v for k, v in x.items() if k != "truth"} for x in self.qa],
            "pending": None if self.pending_question is None else dict(self.pending_question),
            "players": self.num_players,
            "asks_left": len(self.ask_order) - self.ask_index,
            "my_suspect": self.suspicion.get(player),
        }

    def state_text(self, player: int) -> str:
        role = (
            "You are the SPY: you do not know the location."
            if player == self.spy
            else f"You are not the spy. The location is {self.location}."
        )
        if self.phase == "ask":
            todo = "Your turn to ASK another player a yes/no question about the location" + (
                " (or, as the spy, GUESS the location)." if player == self.spy else "."
            )
        elif self.phase == "answer":
            assert self.pending_question is not None
            q = self.pending_question
            todo = f'Player {q["asker"]} asked you: "{q["question"]}" ANSWER yes or no.'
        elif self.phase == "suspect":
            todo = "Name the player you now suspect most of being the spy (SUSPECT)."
        elif self.phase == "vote":
            todo = "All questions are done. VOTE for the player you think is the spy."
        else:
            todo = "You were caught! GUESS the location for a last chance to win."
        return f"{role}\n{todo}"

    def hidden_values(self, player: int) -> list[Hidden]:
        """The spy must not learn the location (nor the truth of answers, which depends on it);
        citizens must not learn who the spy is."""
        if player == self.spy:
            return [
                Hidden("location", self.location, keys=("location", "secret_location")),
                Hidden("truth labels", None, text=False, keys=("truth",)),
            ]
        return [Hidden("spy seat", self.spy, text=False, keys=("spy", "spy_seat"))]

    def legal_actions(self, player: int) -> list[str]:
        others = [p for p in range(self.num_players) if p != player]
        if self.phase == "ask":
            moves = [f"ask {t} {e['question']}" for t in others for e in self.questions.values()]
            if player == self.spy:
                moves += [f"guess {loc}" for loc in self.locations]
            return moves
        if self.phase == "answer":
            return ["answer yes", "answer no"]
        if self.phase == "suspect":
            return [f"suspect {t}" for t in others]
        if self.phase == "vote":
            return [f"vote {t}" for t in others]
        return [f"guess {loc}" for loc in self.locations]

    def move_grammar(self, player: int) -> str:
        """The verb of this phase with its argument: another player's number, yes/no, or a location
        of the list; questions are free text. Not expressed: a question must not name a location
        (a `RuleViolation`)."""
        others = [str(p) for p in range(self.num_players) if p != player]
        guesses = [f"guess {loc}" for loc in self.locations]
        if self.phase == "ask":
            rules = "move: ask" + (" | " + alts(guesses) if player == self.spy else "")
            return (
                rules
                + f"\nask: ({alts(f'ask {t} ' for t in others)}) QUESTION\nQUESTION: {free_text(150, 'A-Z', min_chars=3)}"
            )
        if self.phase == "answer":
            return "move: " + alts(["answer yes", "answer no"])
        if self.phase in ("suspect", "vote"):
            return "move: " + alts(f"{self.phase} {t}" for t in others)
        return "move: " + alts(guesses)

    def default_action(self, player: int) -> str:
        nxt = (player + 1) % self.num_players
        if self.phase == "ask":
            attr = self.rng.choice(sorted(self.questions))
            return f"ask {nxt} {self.questions[attr]['question']}"
        if self.phase == "answer":
            return "answer yes"
        if self.phase in ("suspect", "vote"):
            return f"{self.phase} {nxt}"
        return f"guess {self.rng.choice(self.locations)}"

    # ------------------------------------------------------------------ rules

    def _parse(self, action: str) -> tuple[str, str]:
        text = action.strip()
        m = re.match(r"^\W*(ask|answer|suspect|vote|guess)\b\W*(.*)$", text, re.IGNORECASE | re.DOTALL)
        if m:
            return m.group(1).lower(), m.group(2).strip()
        if self.phase == "answer" and tokens(text) in (["yes"], ["no"]):
            return "answer", tokens(text)[0]
        raise ParseError(
            f"expected one of {', '.join(VERBS)} followed by its argument, got {text[:80]!r}"
            if text
            else "empty action"
        )

    def _player_arg(self, arg: str, player: int, verb: str) -> int:
        """The one player `arg` names. Another number after it ("vote 2 or 3", "suspect 1, 2") is
        refused, not read as the first: a hedge must not count as a choice."""
        m = re.match(r"^(?:player\s*)?#?([+-]?[0-9]+)(?![\w.])", arg.strip(), re.IGNORECASE)
        if not m:
            raise ParseError(f"'{verb}' needs a player number, e.g. '{verb} 2'")
        numbers = {n.lstrip("0") for n in re.findall(r"[0-9]+", arg.strip()[m.end() :])}
        others = numbers - {m.group(1).lstrip("+-").lstrip("0")}
        if others:
            raise ParseError(f"'{verb}' names exactly one player, e.g. '{verb} 2'")
        target = read_int(m.group(1), 0, self.num_players - 1, "player number")
        if target == player:
            raise RuleViolation(f"you cannot {verb} yourself")
        return target

    def _location_arg(self, arg: str) -> str:
        """The location named by the WHOLE argument (case, articles, punctuation and a plural
        aside), matched against the candidate list: "not the beach" or "beach or bank" are not
        "beach" (a hedged guess is refused, not read as its first candidate)."""
        words = [w for w in tokens(arg) if w not in ("the", "a", "an")]
        for loc in self.locations:
            want = tokens(loc)
            if len(words) == len(want) and find_word(words, loc) == [0]:
                return loc
        raise RuleViolation(f"{arg[:60]!r} is not one of the locations: {', '.join(self.locations)}")

    def apply(self, player: int, action: str) -> str:
        verb, arg = self._parse(action)
        expected = {
            "ask": "ask",
            "answer": "answer",
            "suspect": "suspect",
            "vote": "vote",
            "last_guess": "guess",
        }[self.phase]
        spy_guessing = verb == "guess" and self.phase == "ask" and player == self.spy
        if verb == "guess" and self.phase == "ask" and player != self.spy:
            raise RuleViolation("only the spy may guess the location")
        if verb != expected and not spy_guessing:
            raise RuleViolation(f"now is the time to {expected}, not to {verb}: use '{expected} ...'")
        if verb == "ask":
            return self._ask(player, arg)
        if verb == "answer":
            return self._answer(player, arg)
        if verb == "suspect":
            target = self._player_arg(arg, player, "suspect")
            self.suspicion[player] = target
            self.suspect_queue.pop(0)
            self.suspicion_history.append(
                {"after_question": len(self.qa) - 1, "player": player, "suspect": target}
            )
            if not self.suspect_queue:
                self._next_ask()
            return f"suspect {target}"
        if verb == "vote":
            target = self._player_arg(arg, player, "vote")
            self.votes[player] = target
            self.vote_queue.pop(0)
            self.announce(f"Player {player} votes for Player {target}.", type="action", sender=player)
            if not self.vote_queue:
                self._tally()
            return f"vote {target}"
        return self._guess(player, arg)

    def _ask(self, player: int, arg: str) -> str:
        m = re.match(
            r"^(?:player\s*)?#?([+-]?[0-9]+)(?![\w.])[\s:,.\-]*(.*)$", arg, re.IGNORECASE | re.DOTALL
        )
        if not m:
            raise ParseError("'ask' needs a player number and a question, e.g. 'ask 2 Is it cold there?'")
        target = self._player_arg(m.group(1), player, "ask")
        question = " ".join(clean_text(m.group(2)).split())
        if len(question) < 3:
            raise ParseError("the question is missing: 'ask <player> <question>'")
        if len(question) > 200:
            raise RuleViolation("the question is too long (200 characters at most)")
        letter = foreign_letter(question)
        if letter is not None:
            # Unreadable to the name filter, so it could hide a location's name.
            raise RuleViolation(f"write the question in plain Latin letters; {letter!r} is not one")
        named = [loc for loc in self.all_locations if obfuscated_mentions(question, loc)]
        if named:
            raise RuleViolation(f"questions may not name a location ({named[0]})")
        attr = question_attribute(question, self.questions)
        self.pending_question = {"asker": player, "target": target, "question": question, "attribute": attr}
        self.phase = "answer"
        self.announce(f'Player {player} asks Player {target}: "{question}"', type="action", sender=player)
        return f"ask {target} {question}"

    def _answer(self, player: int, arg: str) -> str:
        word = tokens(arg)
        if word not in (["yes"], ["no"]):
            raise ParseError("answer with exactly 'answer yes' or 'answer no'")
        ans = word[0]
        assert self.pending_question is not None
        entry = dict(self.pending_question, answer=ans)
        attr = entry["attribute"]
        entry["truth"] = None if attr is None else ("yes" if attr in self.attributes[self.location] else "no")
        self.qa.append(entry)
        self.pending_question = None
        self.announce(f"Player {player} answers: {ans}.", type="action", sender=player)
        if self.suspicion_enabled:
            self.phase = "suspect"
            self.suspect_queue = [(player + k) % self.num_players for k in range(1, self.num_players + 1)]
        else:
            self._next_ask()
        return f"answer {ans}"

    def _next_ask(self) -> None:
        self.ask_index += 1
        if self.ask_index < len(self.ask_order):
            self.phase = "ask"
        else:
            self.phase = "vote"
            self.vote_queue = list(range(self.num_players))
            self.announce("All questions are asked. Time to vote for the spy.")

    def _tally(self) -> None:
        counts: dict[int, int] = {}
        for target in self.votes.values():
            counts[target] = counts.get(target, 0) + 1
        spy_votes = counts.get(self.spy, 0)
        self._info["votes"] = {str(k): v for k, v in self.votes.items()}
        if spy_votes * 2 > self.num_players:
            self._info["caught"] = True
            self.announce(
                f"A majority voted for Player {self.spy}, who is the spy! The spy may guess the location."
            )
            self.phase = "last_guess"
        else:
            self._info["caught"] = False
            self._end(spy_wins=True, reason="the spy was not caught")

    def _guess(self, player: int, arg: str) -> str:
        loc = self._location_arg(arg)
        self.spy_guess = loc
        right = loc == self.location
        self.announce(
            f"Player {player} (the spy) guesses: {loc}. The location was {self.location}.",
            type="reveal",
            sender=player,
        )
        if self.phase == "last_guess":
            self._end(spy_wins=right, reason="caught spy guessed " + ("right" if right else "wrong"))
        else:
            self._end(spy_wins=right, reason="spy guessed " + ("right" if right else "wrong"))
        return f"guess {loc}"

    def _end(self, spy_wins: bool, reason: str) -> None:
        winners = [self.spy] if spy_wins else [p for p in range(self.num_players) if p != self.spy]
        self._info.update(
            spy=self.spy,
            location=self.location,
            spy_guess=self.spy_guess,
            spy_wins=spy_wins,
            qa=[dict(x) for x in self.qa],
            suspicion=list(self.suspicion_history),
        )
        self.finish(
            {p: 1.0 if p in winners else 0.0 for p in range(self.num_players)},
            reason=reason,
            winners=winners,
            ranks={p: 0 if p in winners else 1 for p in range(self.num_players)},
        )

    def on_turn_limit(self) -> None:
        self._end(spy_wins=True, reason="turn limit: the spy survives")
