"""Perudo (Liar's Dice): hidden dice, rising bids, challenges that reveal everything.

The proposal's bluffing environment: each player sees only its own dice and must estimate the
count of one face across the table. Ones-are-wild is an option (then bids on ones are not
allowed, and ones count toward every face). See rules.txt for the text players read.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any, ClassVar

from selflab.envs.core import Hidden, ParseError, RuleViolation, TextEnv
from selflab.envs.grammar import alts
from selflab.envs.reader import read_int
from selflab.envs.words import normalize
from selflab.errors import ConfigError

FACE_WORDS = {
    "one": 1, "ones": 1, "two": 2, "twos": 2, "three": 3, "threes": 3, "four": 4, "fours": 4,
    "five": 5, "fives": 5, "six": 6, "sixes": 6, "sixs": 6,
}  # fmt: skip
NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
}  # fmt: skip
CHALLENGE_WORDS = ("challenge", "dudo", "liar", "call")

Bid = tuple[int, int]


def count_face(dice: dict[int, list[int]], face: int, ones_wild: bool) -> int:
    """How many dice on the table satisfy a bid on `face`."""
    return sum(1 for hand in dice.values() for d in hand if d == face or (ones_wild and d == 1 and face != 1))


def bid_beats(new: Bid, old: Bid | None) -> bool:
    """Higher quantity with any face, or the same quantity with a higher face."""
    if old is None:
        return True
    return new[0] > old[0] or (new[0] == old[0] and new[1] > old[1])


MAX_QUANTITY = 60  # 6 players x 10 dice
TURN_LIMIT_SHOWN = 2  # rounds of moves before the turn limit from which the observation counts down
ROUND_BIDS_SHOWN = 8  # the current round's latest bids shown in a player's observation


def parse_action(text: str) -> tuple[str, Bid | None]:
    """("challenge", None) or ("bid", (quantity, face)); raises ParseError / RuleViolation.

    Explicit protocol: a challenge is an action whose first word is challenge/dudo/liar/call
    (optionally after "I"), never a challenge word somewhere in a sentence. A bid tolerates case,
    punctuation, "3x5", "3 fives", "three 5s", "bid: 3, 5". Numbers keep their sign and are read
    by the shared bounded reader, so "bid -3 5" and a 5000-digit quantity are refused. A bid names
    exactly two numbers: "bid 3 5 or 4 6" and "bid 2.5 6" are refused, not read as their first
    two."""
    t = normalize(text).strip()
    t = re.sub(r"([0-9])\s*[x×*]\s*([0-9])", r"\1 \2", t)
    words = re.findall(r"[+-]?[0-9]+s?|[a-z]+", t)
    head = words[1:2] if words[:1] == ["i"] else words[:1]
    has_challenge = any(w in CHALLENGE_WORDS for w in words)
    has_bid = "bid" in words or "raise" in words
    if head and head[0] in CHALLENGE_WORDS:
        if any(w[-1].isdigit() for w in words):
            raise ParseError("the action names both a challenge and a bid; give exactly one")
        return "challenge", None
    if has_challenge:
        raise ParseError(
            "give exactly one move: 'challenge' alone, or 'bid <quantity> <face>'"
            if has_bid
            else "to challenge, the action must be just 'challenge'"
        )
    if re.search(r"[0-9]\.[0-9]", t):
        raise ParseError("quantity and face are whole numbers: write 'bid 3 5', not 'bid 2.5 6'")
    numbers: list[int] = []
    for w in words:
        is_digit = w[-1].isdigit() or (w.endswith("s") and w[-2:-1].isdigit())
        if len(numbers) == 2 and (is_digit or w in NUMBER_WORDS or w in FACE_WORDS):
            # "bid 3 5 or 4 6", "bid twenty one fives": a third number makes the bid ambiguous.
            raise ParseError("a bid names exactly two numbers, quantity and face: 'bid <quantity> <face>'")
        if is_digit:
            what = "quantity" if not numbers else "face"
            numbers.append(read_int(w.rstrip("s"), 1, 99 if numbers else MAX_QUANTITY, what))
        elif w in NUMBER_WORDS and not numbers:
            numbers.append(NUMBER_WORDS[w])
        elif w in FACE_WORDS and len(numbers) == 1:
            numbers.append(FACE_WORDS[w])
    if len(numbers) == 2:
        return "bid", (numbers[0], numbers[1])
    raise ParseError(
        f"expected 'bid <quantity> <face>' or 'challenge', got {text[:80]!r}" if text else "empty action"
    )


class PerudoEnv(TextEnv):
    """Perudo for 2-6 players. `initial_dice` fixes the first round's roll (tests, instances)."""

    min_players: ClassVar[int] = 2
    max_players: ClassVar[int] = 6
    action_format = "ACTION: bid <quantity> <face>  or  ACTION: challenge"
    complete_observations = True  # `state_text` summarises the relevant past (see there)

    def __init__(
        self,
        players: int = 2,
        dice: int = 5,
        ones_wild: bool = False,
        initial_dice: list[list[int]] | None = None,
        error_budget: int = 2,
        max_turns: int = 300,
    ) -> None:
        super().__init__(players, error_budget=error_budget, max_turns=max_turns)
        if not 1 <= dice <= 10:
            raise ConfigError(f"dice must be 1..10 per player, got {dice}", "pass dice=5")
        if initial_dice is not None:
            if len(initial_dice) != players or any(
                len(h) != dice or any(not 1 <= d <= 6 for d in h) for h in initial_dice
            ):
                raise ConfigError(
                    "initial_dice must hold `players` hands of `dice` values in 1..6",
                    f"e.g. {[[1] * dice for _ in range(players)]}",
                )
        self.dice_per_player = dice
        self.ones_wild = ones_wild
        self.initial_dice = initial_dice
        template = resources.files("selflab.envs.games.perudo").joinpath("rules.txt").read_text()
        wild = (
            "- Ones are WILD: a 1 counts as any face. Bid faces 2 to 6, never 1."
            if ones_wild
            else "- Bid any face 1 to 6; ones are not wild."
        )
        self.rules = template.format(
            players=players, dice=dice, wild_rule=wild, budget_plus_one=error_budget + 1, max_turns=max_turns
        )

    # ------------------------------------------------------------------ game state

    def setup(self) -> None:
        self.counts: dict[int, int] = {p: self.dice_per_player for p in range(self.num_players)}
        self.hands: dict[int, list[int]] = {}
        self.bid: Bid | None = None
        self.bidder: int | None = None
        self.round = 0
        self.round_bids: list[tuple[int, Bid]] = []
        self.eliminated: list[int] = []  # in order of elimination
        self.challenges: list[dict[str, Any]] = []
        self.to_act = 0
        self.announce(
            f"Perudo with {self.num_players} players, {self.dice_per_player} dice each"
            + (", ones wild." if self.ones_wild else ".")
        )
        self._new_round(starter=0)

    def _new_round(self, starter: int) -> None:
        self.round += 1
        if self.round == 1 and self.initial_dice is not None:
            self.hands = {p: sorted(self.initial_dice[p]) for p in range(self.num_players)}
        else:
            self.hands = {
                p: sorted(self.rng.randint(1, 6) for _ in range(self.counts[p]))
                for p in range(self.num_players)
            }
        self.bid = None
        self.bidder = None
        self.round_bids = []
        self.round_start = len(self.messages)
        self.to_act = self._alive_from(starter)
        self.announce(f"Round {self.round} begins. Player {self.to_act} bids first.")
        for p in range(self.num_players):
            if self.counts[p] > 0:
                self.tell(p, f"Round {self.round}: your dice are {' '.join(map(str, self.hands[p]))}.")

    def _alive_from(self, start: int) -> int:
        for k in range(self.num_players):
            p = (start + k) % self.num_players
            if self.counts[p] > 0:
                return p
        raise RuntimeError("no player has dice")

    @property
    def total_dice(self) -> int:
        return sum(self.counts.values())

    def current_player(self) -> int:
        return self.to_act

    def min_face(self) -> int:
        return 2 if self.ones_wild else 1

    # ------------------------------------------------------------------ views

    def state(self, player: int) -> dict[str, Any]:
        return {
            "dice": list(self.hands.get(player, [])),
            "dice_counts": dict(self.counts),
            "total_dice": self.total_dice,
            "bid": self.bid,
            "bidder": self.bidder,
            "ones_wild": self.ones_wild,
            "round": self.round,
            "round_bids": list(self.round_bids),
            "players": self.num_players,
        }

    def state_text(self, player: int) -> str:
        """The whole state a player needs, as one short block (`complete_observations`): dice left
        per player, own dice, the current bid, this round's earlier bids and, near the turn limit,
        the moves left. Earlier rounds are not retold: dice are rolled again each round, so their
        outcome is all that bears on the present, and it is in the dice left.

        Laid out for prefix reuse: the lines come from the least to the most often changing, and
        none names a past only this game has, so a prompt shares its start with the same seat's
        previous one and with every other game's prompt in the same public state (the engine's
        prefix cache serves both: measured in docs/selfplay_speed.md)."""
        counts = ", ".join(
            f"Player {p} has {n}" if n else f"Player {p} is out" for p, n in self.counts.items()
        )
        wild = " Ones are wild." if self.ones_wild else ""
        lines = [
            f"Dice left: {counts} ({self.total_dice} in play).{wild}",
            f"Round {self.round}. Your dice: {' '.join(map(str, self.hands[player]))}.",
        ]
        if self.bid is not None:
            lines.append(
                f"Current bid: at least {self.bid[0]} dice show {self.bid[1]} (Player {self.bidder})."
            )
        else:
            lines.append("No bid yet this round: you must open with a bid.")
        earlier = self.round_bids[:-1]
        if earlier:
            shown = earlier[-ROUND_BIDS_SHOWN:]
            skipped = len(earlier) - len(shown)
            bids = ", ".join(f"Player {p} bid {q} {f}" for p, (q, f) in shown)
            lines.append(f"Earlier bids this round: {f'({skipped} not shown) ' if skipped else ''}{bids}.")
        moves_left = self.max_turns - self.turn
        if moves_left <= TURN_LIMIT_SHOWN * self.num_players:
            lines.append(f"Turn limit in {moves_left} moves.")
        return "\n".join(lines)

    def hidden_values(self, player: int) -> list[Hidden]:
        """The other players' dice of this round (revealed only by a challenge, which ends it)."""
        own = self.hands.get(player, [])
        return [
            Hidden(
                f"dice of player {q}",
                list(h),
                text=len(h) >= 3,
                keys=("hands", "all_dice"),
                anywhere=len(h) >= 3,  # two dice look like a bid (quantity, face)
                since=self.round_start,
            )
            for q, h in self.hands.items()
            if q != player and self.counts[q] > 0 and h and list(h) != list(own)
        ]

    def legal_actions(self, player: int) -> list[str]:
        moves = ["challenge"] if self.bid is not None else []
        for q in range(1, self.total_dice + 1):
            for f in range(self.min_face(), 7):
                if bid_beats((q, f), self.bid):
                    moves.append(f"bid {q} {f}")
        return moves

    def move_grammar(self, player: int) -> str:
        """Only bids that raise the current one (within the dice in play), or a challenge when
        there is a bid."""
        return "move: " + alts(self.legal_actions(player))

    def default_action(self, player: int) -> str:
        if self.bid is not None:
            return "challenge"
        return f"bid 1 {self.min_face()}"

    # ------------------------------------------------------------------ rules

    def apply(self, player: int, action: str) -> str:
        kind, bid = parse_action(action)
        if kind == "challenge":
            if self.bid is None:
                raise RuleViolation("there is no bid to challenge yet; open with 'bid <quantity> <face>'")
            self._challenge(player)
            return "challenge"
        assert bid is not None
        q, f = bid
        if not 1 <= f <= 6:
            raise RuleViolation(f"face {f} does not exist; faces are 1 to 6")
        if self.ones_wild and f == 1:
            raise RuleViolation(
                "ones are wild in this game, so you cannot bid on ones; bid a face from 2 to 6"
            )
        if not 1 <= q <= self.total_dice:
            raise RuleViolation(f"quantity {q} is impossible; it must be between 1 and {self.total_dice}")
        if not bid_beats(bid, self.bid):
            assert self.bid is not None
            raise RuleViolation(
                f"bid {q} {f} does not beat the current bid {self.bid[0]} {self.bid[1]}: raise the quantity, "
                f"or keep quantity {self.bid[0]} with a face above {self.bid[1]}"
            )
        self.bid, self.bidder = bid, player
        self.round_bids.append((player, bid))
        self.announce(f"Player {player} bids: at least {q} dice show {f}.", type="action", sender=player)
        self.to_act = self._alive_from(player + 1)
        return f"bid {q} {f}"

    def _challenge(self, challenger: int) -> None:
        assert self.bid is not None and self.bidder is not None
        q, f = self.bid
        actual = count_face(self.hands, f, self.ones_wild)
        loser = challenger if actual >= q else self.bidder
        reveal = "; ".join(
            f"Player {p}: {' '.join(map(str, h))}" for p, h in self.hands.items() if self.counts[p] > 0
        )
        self.announce(f"Player {challenger} challenges the bid {q} {f}.", type="action", sender=challenger)
        self.announce(
            f"Dice revealed: {reveal}. There are {actual} dice counting as {f}"
            + (" (ones wild)" if self.ones_wild else "")
            + f"; the bid was {'true' if actual >= q else 'false'}. Player {loser} loses a die.",
            type="reveal",
        )
        self.challenges.append(
            {"round": self.round, "bid": [q, f], "bidder": self.bidder, "challenger": challenger,
             "actual": actual, "loser": loser}
        )  # fmt: skip
        self.counts[loser] -= 1
        if self.counts[loser] == 0:
            self.eliminated.append(loser)
            self.announce(f"Player {loser} has no dice left and is out.")
        alive = [p for p in range(self.num_players) if self.counts[p] > 0]
        if len(alive) == 1:
            self._end(alive[0])
            return
        self._new_round(starter=loser)

    def _end(self, winner: int) -> None:
        # Rank: the winner first, then the later a player was eliminated, the better.
        order = [winner] + list(reversed(self.eliminated))
        ranks = {p: order.index(p) for p in range(self.num_players)}
        self._info["challenges"] = list(self.challenges)
        self.finish(
            {p: 1.0 if p == winner else 0.0 for p in range(self.num_players)},
            reason=f"Player {winner} is the last with dice",
            winners=[winner],
            ranks=ranks,
        )

    def on_turn_limit(self) -> None:
        """Most dice left wins; equal counts share the rank (and the win)."""
        best = max(self.counts.values())
        winners = [p for p, n in self.counts.items() if n == best]
        distinct = sorted(set(self.counts.values()), reverse=True)
        ranks = {p: distinct.index(n) for p, n in self.counts.items()}
        self._info["challenges"] = list(self.challenges)
        share = 1.0 / len(winners)
        self.finish(
            {p: share if p in winners else 0.0 for p in range(self.num_players)},
            reason="turn limit: most dice left wins",
            winners=winners,
            ranks=ranks,
        )
