"""Pair construction rules and conversational row formats (pure logic, hand-computed values)."""

from __future__ import annotations

from pathlib import Path

import pytest

from selflab.errors import SelflabError
from selflab.models.types import user
from selflab.training import (
    PairCounts,
    PreferencePair,
    ScoredResponse,
    SFTExample,
    best_vs_worst_pairs,
    build_pairs,
    dpo_rows,
    kto_from_pairs,
    load_rows,
    mean_score,
    normalise_rows,
    save_parquet,
    sft_rows,
)

P = [user("q")]


def S(text: str, score: float | None) -> ScoredResponse:
    return ScoredResponse(response=text, score=score)


def test_highest_against_lowest() -> None:
    counts = PairCounts()
    pair = best_vs_worst_pairs(P, [S("a", 3), S("b", 5), S("c", 1), S("d", 4)], counts)
    assert pair is not None and (pair.chosen, pair.rejected) == ("b", "c")
    assert (pair.chosen_score, pair.rejected_score) == (5, 1)
    assert counts.pairs == 1 and counts.groups == 1


def test_ties_unparsable_and_duplicates_are_dropped_and_counted() -> None:
    groups = [
        (P, [S("a", 4), S("b", 4), S("c", 4)]),  # tie: all equal
        (P, [S("a", None), S("b", 5), S("c", None)]),  # one scored answer left: too few
        (P, [S("a", None), S("b", None)]),  # nothing parsed
        (P, [S("same", 5), S(" same ", 1)]),  # best and worst are one text
        (P, [S("x", 2), S("y", None), S("z", 5)]),  # a valid pair despite one unparsable
    ]
    result = build_pairs(groups)
    c = result.counts
    assert (c.groups, c.pairs, c.dropped_ties, c.dropped_too_few_scored, c.dropped_duplicate_text) == (
        5,
        1,
        1,
        2,
        1,
    )
    assert c.unparsable_responses == 2 + 2 + 1
    assert [(p.chosen, p.rejected) for p in result.pairs] == [("z", "x")]
    assert result.pairs[0].id == "4"


def test_margin_turns_near_ties_into_ties() -> None:
    result = build_pairs([(P, [S("a", 3.0), S("b", 3.5)])], min_margin=0.5)
    assert result.counts.dropped_ties == 1 and not result.pairs


def test_mean_of_k_judgments_ignores_unparsable() -> None:
    assert mean_score([4, None, 2]) == 3.0
    assert mean_score([None, None]) is None


def test_conversational_rows() -> None:
    rows = sft_rows([SFTExample(prompt=P, response="ans")])
    assert rows == [
        {
            "prompt": [{"role": "user", "content": "q"}],
            "completion": [{"role": "assistant", "content": "ans"}],
        }
    ]
    pair = PreferencePair(prompt=P, chosen="good", rejected="bad", id="7")
    assert dpo_rows([pair])[0]["rejected"] == [{"role": "assistant", "content": "bad"}]
    kto = kto_from_pairs([pair])
    assert [(k.response, k.label) for k in kto] == [("good", True), ("bad", False)]


def test_files_round_trip_and_normalise(tmp_path: Path) -> None:
    f = tmp_path / "d.jsonl"
    f.write_text('{"prompt": "hi", "chosen": "a", "rejected": "b"}\n\n')
    rows = normalise_rows("dpo", load_rows(f))
    assert rows[0]["prompt"] == [{"role": "user", "content": "hi"}]
    assert rows[0]["chosen"] == [{"role": "assistant", "content": "a"}]
    pq = save_parquet(rows, tmp_path / "d.parquet")
    assert load_rows(pq) == rows
    with pytest.raises(SelflabError, match="needs columns"):
        normalise_rows("kto", rows)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": 1}\n{oops\n')
    with pytest.raises(SelflabError, match="bad.jsonl:2"):
        load_rows(bad)
