"""Debate: two debaters argue a motion over rounds, then a pairwise judge or a jury decides.

The judge is any `selflab.judges.types.PairwiseJudge` (or a list of them: a jury by majority),
asked in both orders to cancel position bias; the default is the rule-based fact-check baseline.
Factual motions have a known answer, so `info["truthful_side_won"]` measures whether debate
helps the judge find the truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from selflab.envs.core import Hidden, ParseError, TextEnv
from selflab.envs.games.debate.freetext import FreeTextMixin
from selflab.envs.games.debate.instances import Motion, draw_motion
from selflab.envs.games.debate.judge import FactCheckBaselineJudge
from selflab.envs.grammar import free_text
from selflab.errors import ConfigError
from selflab.judges.types import Judgment, PairwiseItem, PairwiseJudge

RULES = Path(__file__).with_name("rules.txt").read_text(encoding="utf-8")
FOR, AGAINST = 0, 1
SIDE = {FOR: "FOR", AGAINST: "AGAINST"}
SILENT = "(no speech)"


def resolve_judges(judge: Any) -> list[PairwiseJudge]:
    """None or "baseline" -> the fact-check baseline; "llm:<model spec>" -> an LLM pairwise judge;
    a PairwiseJudge -> itself; a list -> a jury."""
    if judge is None or judge == "baseline":
        return [FactCheckBaselineJudge()]
    if isinstance(judge, str):
        if judge.startswith("llm:"):
            from selflab.judges.factory import build_judge
            from selflab.models import load_model

            return [build_judge("pairwise", load_model(judge[4:]))]  # type: ignore[list-item]
        raise ConfigError(
            f"unknown judge {judge!r}", "use 'baseline', 'llm:<model spec>' or a PairwiseJudge object"
        )
    judges = list(judge) if isinstance(judge, list | tuple) else [judge]
    for j in judges:
        if not isinstance(j, PairwiseJudge):
            raise ConfigError(f"{j!r} is not a PairwiseJudge", "pass objects with .name and .compare(items)")
    if not judges:
        raise ConfigError("the jury is empty", "pass at least one judge")
    return judges


class DebateEnv(FreeTextMixin, TextEnv):
    """`motions`: "factual", "opinion" or "mixed"; `motion` fixes one (a `Motion`, dict or text)."""

    rules = RULES
    action_format = "ACTION: <your speech, one line>"
    min_players: ClassVar[int] = 2
    max_players: ClassVar[int] = 2
    max_message_chars = 800

    def __init__(
        self,
        players: int = 2,
        *,
        rounds: int = 3,
        motions: str = "mixed",
        motion: Motion | dict[str, Any] | str | None = None,
        judge: Any = None,
        both_orders: bool = True,
        error_budget: int = 3,
    ) -> None:
        if rounds < 1:
            raise ConfigError(f"rounds must be >= 1, got {rounds}", "pass rounds=3")
        if motions not in ("factual", "opinion", "mixed"):
            raise ConfigError(f"unknown motions {motions!r}", "use factual, opinion or mixed")
        super().__init__(players, error_budget=error_budget, max_turns=2 * rounds)
        if isinstance(motion, str):
            motion = Motion(id="custom", motion=motion, kind="opinion")
        elif isinstance(motion, dict):
            motion = Motion.model_validate(motion)
        self.rounds = rounds
        self.motions = motions
        self.motion_option = motion
        self.judges = resolve_judges(judge)
        self.both_orders = both_orders
        self.motion = Motion(id="", motion="", kind="opinion")
        self.speeches: dict[int, list[str]] = {FOR: [], AGAINST: []}

    def setup(self) -> None:
        self.motion = self.motion_option or draw_motion(self.rng, self.motions)
        self.speeches = {FOR: [], AGAINST: []}
        self._info.update(
            {"motion": self.motion.motion, "motion_id": self.motion.id, "kind": self.motion.kind}
        )
        self.announce(
            f"Debate. Motion: {self.motion.motion} Player 0 argues FOR, Player 1 AGAINST; "
            f"{self.rounds} speeches each, Player 0 first.",
            type="setup",
        )
        if self.motion.evidence:
            self.tell(
                {FOR, AGAINST},
                "Evidence for both debaters: " + " ".join(self.motion.evidence),
                type="evidence",
            )

    def current_player(self) -> int:
        return self.turn % 2

    def state_text(self, player: int) -> str:
        return (
            f"Motion: {self.motion.motion}\nYou argue {SIDE[player]} the motion. "
            f"Speech {self.turn // 2 + 1} of {self.rounds}."
        )

    def state(self, player: int) -> dict[str, Any]:
        return {
            "side": SIDE[player].lower(),
            "motion": self.motion.motion,
            "kind": self.motion.kind,
            "evidence": list(self.motion.evidence),
            "answer": self.motion.answer,
            "arguments": list(self.motion.pro if player == FOR else self.motion.con),
            "opponent_speeches": list(self.speeches[1 - player]),
            "round": self.turn // 2,
            "rounds": self.rounds,
        }

    def move_grammar(self, player: int) -> str:
        """Free text, one line: only the wrapper format is constrained."""
        return f"move: SPEECH\nSPEECH: {free_text(self.max_message_chars)}"

    def hidden_values(self, player: int) -> list[Hidden]:
        """Nothing: both debaters see the same motion and evidence. (A factual motion's answer is
        settled by the evidence both are shown, so it is public, not a hidden label.)"""
        return []

    def apply(self, player: int, action: str) -> str:
        text = self.message_text(action)
        if not text:
            raise ParseError("the speech is empty; write your argument after 'ACTION:'")
        self.speeches[player].append(text)
        self.announce(f"{SIDE[player]} (Player {player}): {text}", type="speech", sender=player)
        if player == AGAINST and len(self.speeches[AGAINST]) >= self.rounds:
            self._decide()
        return text

    def default_action(self, player: int) -> str:
        return SILENT

    # -------------------------------------------------------------------- judging

    def _side_text(self, player: int) -> str:
        return "\n".join(f"Speech {i + 1}: {s}" for i, s in enumerate(self.speeches[player]))

    def _items(self) -> list[PairwiseItem]:
        def item(a: int, b: int) -> PairwiseItem:
            prompt = (
                f"Debate motion: {self.motion.motion}\n"
                f"Debater A argued {SIDE[a]} the motion and Debater B argued {SIDE[b]} it. "
                "Which debater argued better: more accurate evidence, stronger reasoning, better answers "
                "to the other side?"
            )
            return PairwiseItem(
                prompt=prompt,
                response_a=self._side_text(a),
                response_b=self._side_text(b),
                id=f"{self.motion.id}:{SIDE[a]}-first",
            )

        items = [item(FOR, AGAINST)]
        if self.both_orders:
            items.append(item(AGAINST, FOR))
        return items

    def _decide(self) -> None:
        items = self._items()
        votes: list[int | None] = []
        judgments: list[Judgment] = []
        errors: list[str] = []
        for judge in self.judges:
            try:
                out = judge.compare(items)
            except Exception as err:  # noqa: BLE001 - a failing judge must not crash the episode
                errors.append(f"{getattr(judge, 'name', judge)}: {type(err).__name__}: {err}")
                votes.append(None)
                continue
            judgments.extend(out)
            if len(out) != len(items):  # one verdict for two orders would not cancel position bias
                errors.append(
                    f"{getattr(judge, 'name', judge)}: returned {len(out)} judgment(s) for {len(items)} item(s)"
                )
                votes.append(None)
                continue
            winners = []
            for j, first in zip(out, (FOR, AGAINST), strict=True):
                if j.verdict in ("A", "B"):
                    winners.append(first if j.verdict == "A" else 1 - first)
                else:
                    winners.append(None)  # tie or parse failure: no vote from this order
            agreed = {w for w in winners}
            votes.append(winners[0] if len(agreed) == 1 else None)
        n_for, n_against = votes.count(FOR), votes.count(AGAINST)
        winner = FOR if n_for > n_against else AGAINST if n_against > n_for else None
        truthful = None if self.motion.answer is None else (FOR if self.motion.answer else AGAINST)
        self._info.update(
            {
                "votes": [None if v is None else SIDE[v].lower() for v in votes],
                "judgments": [j.model_dump() for j in judgments],
                "judge_errors": errors,
                "answer": self.motion.answer,
                "truthful_side": truthful,
                "truthful_side_won": None if truthful is None else winner == truthful,
                "position_consistent": [v is not None for v in votes],
            }
        )
        if winner is None:
            self.finish(
                {FOR: 0.0, AGAINST: 0.0}, reason="the judges found no consistent winner (tie)", winners=[]
            )
        else:
            self.finish(
                {winner: 1.0, 1 - winner: -1.0}, reason=f"the judges chose {SIDE[winner]}", winners=[winner]
            )
