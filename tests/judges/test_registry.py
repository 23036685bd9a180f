"""The typed judge registry: per-kind options models, generated help, a new judge in one file."""

from __future__ import annotations

import pytest
from pydantic import Field

from selflab.errors import ConfigError
from selflab.evalbench.runner import BenchConfig, Unit, make_judge, parse_judge_spec, run_judge
from selflab.judges import Judge, build_judge, options_help
from selflab.judges.registry import JudgeContext, JudgeOptions, accepted, judge_kinds, register_judge
from selflab.judges.types import Judgment, PointwiseItem

from .scripted import ScriptedModel

MODEL = ScriptedModel(lambda text, request: "Score: 3", scorer=lambda text, cont: -1.0)


def test_every_kind_declares_typed_documented_options() -> None:
    kinds = judge_kinds()
    assert {"rubric", "pairwise", "likelihood", "debate", "meta", "jury"} <= set(kinds)
    text = options_help()
    for name, kind in kinds.items():
        assert issubclass(kind.options, JudgeOptions)
        assert kind.usage in text
        for field, info in kind.options.model_fields.items():
            assert info.description, f"{name}.{field} has no description"
            assert f"  {field} (" in text
    assert "fence (none|boundary|datamark, default boundary)" in options_help("rubric")


def test_build_judge_returns_typed_judges_with_their_protocols() -> None:
    expected = {
        "rubric": {"pointwise"},
        "pairwise": {"pairwise"},
        "likelihood": {"pointwise", "pairwise"},
        "debate": {"pointwise", "pairwise"},
        "meta": {"meta"},
        "jury:seeds:2": {"pointwise", "pairwise"},
        "jury:personas:2:likelihood": {"pointwise", "pairwise"},
    }
    for kind, protocols in expected.items():
        judge = build_judge(kind, MODEL)
        assert isinstance(judge, Judge) and judge.protocols == protocols, kind


def test_options_are_checked_per_kind() -> None:
    with pytest.raises(ConfigError) as info:
        build_judge("likelihood", MODEL, temperature=0.5)  # likelihood judges do not sample
    assert "likelihood" in str(info.value) and "tie_margin" in info.value.fix
    with pytest.raises(ConfigError):
        build_judge("rubric", MODEL, fence="sometimes")
    with pytest.raises(ConfigError):
        build_judge("nonsense", MODEL)
    # The historical name of the pairwise template still works.
    assert build_judge("pairwise", MODEL, pairwise_template="pairwise").template == "pairwise"
    assert accepted("likelihood", {"direct": True, "seed": 3, "fence": "none"}) == {
        "seed": 3,
        "fence": "none",
    }


def test_judge_specs_carry_options() -> None:
    assert parse_judge_spec("pairwise") == ("pairwise", {})
    assert parse_judge_spec("rubric[fence=none, constrain=false,samples=1]") == (
        "rubric",
        {"fence": "none", "constrain": False, "samples": 1},
    )
    assert parse_judge_spec("jury:seeds:3[aggregate=majority]") == ("jury:seeds:3", {"aggregate": "majority"})
    with pytest.raises(ConfigError):
        parse_judge_spec("rubric[fence]")


class ConstantOptions(JudgeOptions):
    value: float = Field(2.0, description="the score every response gets")


class ConstantJudge:
    """A judge added the way a user would: one class, one options model, one registration."""

    protocols = frozenset({"pointwise"})

    def __init__(self, value: float) -> None:
        self.value = value
        self.name = f"constant({value:g})"

    def judge(self, items: list[PointwiseItem]) -> list[Judgment]:
        return [
            Judgment(judge=self.name, kind="pointwise", raw="", score=self.value, item_id=i.id) for i in items
        ]


@register_judge("constant", ConstantOptions, "gives every response the same score (test judge)")
def _build(ctx: JudgeContext, o: ConstantOptions) -> ConstantJudge:
    return ConstantJudge(o.value)


def test_a_new_judge_needs_no_other_edit() -> None:
    assert "constant: gives every response the same score" in options_help()
    judge = build_judge("constant", MODEL, value=4)
    assert judge.judge([PointwiseItem(prompt="q", response="r")])[0].score == 4.0
    # The benchmark runs it without knowing it: shared settings it does not declare are dropped.
    bench_judge = make_judge("constant[value=1]", MODEL, BenchConfig())
    unit = Unit(id="u", mode="pointwise", item_id="i", domain="d", prompt="q", response="r", correct=True)
    pair = unit.model_copy(update={"id": "p", "mode": "pairwise", "response_b": "s"})
    [record] = run_judge(bench_judge, [unit, pair])
    assert record.score == 1.0 and record.unit.id == "u"
