"""A rule-based BASELINE pairwise judge for debates: it trusts whichever side cites more numbers
that match the fact table and penalises wrong numbers. It needs no model (tests, no-model
defaults) and is deliberately simple: it reads citations, not arguments, so it says "tie" on
opinion motions. Use a `selflab.judges` PairwiseJudge or a jury for real judging.

Only citations of entities the question (the item's prompt: the motion) names count: a true figure
about an unrelated mountain proves nothing about the motion, and counting it let either side (the
one arguing against the truth, or FOR an opinion motion) win by reciting the fact table."""

from __future__ import annotations

from selflab.envs.games.debate.facts import citations, named_entities
from selflab.judges.types import Judgment, PairwiseItem

WRONG_PENALTY = 2.0


def citation_score(text: str, relevant: frozenset[str] | None = None) -> tuple[float, int, int]:
    """(score, correct citations, wrong citations); each distinct fact counts once. With
    `relevant`, only citations of those entities count."""
    right: set[str] = set()
    wrong: set[str] = set()
    for c in citations(text):
        if relevant is not None and c.fact.entity not in relevant:
            continue
        (right if c.correct else wrong).add(c.fact.entity)
    right -= wrong
    return len(right) - WRONG_PENALTY * len(wrong), len(right), len(wrong)


class FactCheckBaselineJudge:
    """PairwiseJudge: verdict for the response with the higher citation score (tie when equal)."""

    name = "fact-check-baseline"

    def compare(self, items: list[PairwiseItem]) -> list[Judgment]:
        out = []
        for item in items:
            relevant = named_entities(item.prompt)
            sa, ra, wa = citation_score(item.response_a, relevant)
            sb, rb, wb = citation_score(item.response_b, relevant)
            verdict = "A" if sa > sb else "B" if sb > sa else "tie"
            raw = (
                f"A: {ra} correct, {wa} wrong citations (score {sa:g}); "
                f"B: {rb} correct, {wb} wrong citations (score {sb:g}). Verdict: {verdict}"
            )
            out.append(
                Judgment(
                    judge=self.name,
                    kind="pairwise",
                    raw=raw,
                    verdict=verdict,  # type: ignore[arg-type]
                    score=sa - sb,
                    item_id=item.id,
                    details={
                        "score_a": sa,
                        "score_b": sb,
                        "correct_a": ra,
                        "wrong_a": wa,
                        "correct_b": rb,
                        "wrong_b": wb,
                    },
                )
            )
        return out
