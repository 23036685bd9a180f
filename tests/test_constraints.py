"""The constraints module alone: validation, text matching, token masks (no model forward)."""

from __future__ import annotations

import pytest
import torch

from selflab.models.constraints import ConstraintError, mismatch, text_matches, validate
from selflab.models.types import Constraint, SamplingParams

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("constraint", "needle"),
    [
        (Constraint.regex("[a-"), "unclosed character class"),
        (Constraint.grammar("start: foo"), 'unknown name: "foo"'),
        (Constraint.grammar('foo: "a"'), "no start rule"),
        (Constraint.grammar('start "a"'), "Expected token"),
        (Constraint.json_schema("{not json"), "invalid json_schema"),
        (Constraint.json_schema("[1, 2]"), "must be an object"),
        (Constraint.json_schema({"type": "nonsense"}), "nonsense"),
    ],
)
def test_invalid_constraints_name_the_problem(constraint, needle):
    with pytest.raises(ConstraintError) as info:
        validate(constraint)
    assert needle in str(info.value)
    assert info.value.fix


def test_valid_constraints_compile():
    for c in [
        Constraint.regex(r"(yes|no)"),
        Constraint.grammar('start: "a" | "b"'),
        Constraint.json_schema(SCHEMA),
    ]:
        assert validate(c)


def test_constraint_rides_in_sampling_params():
    params = SamplingParams(constraint=Constraint.regex("[0-9]+"))
    assert params.constraint.kind == "regex"
    assert SamplingParams.model_validate_json(params.model_dump_json()) == params


def test_text_matches_regex_is_a_full_match():
    c = Constraint.regex(r"[0-9]{3}")
    assert text_matches(c, "123")
    assert not text_matches(c, "12")
    assert not text_matches(c, "1234")
    assert not text_matches(c, "x123")
    assert "character 2" in mismatch(c, "12a")
    assert "unfinished" in mismatch(c, "12")
    assert mismatch(c, "12", prefix=True) is None  # a cut-off output that could still match
    assert mismatch(c, "1a", prefix=True) is not None
    schema = Constraint.json_schema(SCHEMA)
    assert mismatch(schema, '{"name": "An', prefix=True) is None
    assert mismatch(schema, '{\n  "name": "An', prefix=True) is None
    assert mismatch(schema, "Sure! Here", prefix=True) is not None


def test_text_matches_grammar_and_unicode():
    grammar = Constraint.grammar('start: "Score: " /[1-5]/')
    assert text_matches(grammar, "Score: 4")
    assert not text_matches(grammar, "Score: 6")
    assert text_matches(Constraint.regex("h.llo wörld"), "héllo wörld")


def test_text_matches_json_schema_by_meaning_not_key_order():
    c = Constraint.json_schema(SCHEMA)
    assert text_matches(c, '{"name": "Ann", "age": 3}')
    assert text_matches(c, '{"age": 3, "name": "Ann"}')  # any key order is valid JSON for the schema
    assert text_matches(c, '{\n  "name": "Ann",\n  "age": 3\n}')
    assert not text_matches(c, '{"name": "Ann"}')
    assert not text_matches(c, '{"name": "Ann", "age": -1}')
    assert "not JSON" in mismatch(c, '{"name": ')


def test_choice_helper():
    c = Constraint.choice(["[[A]]", "[[B]]", 'say "hi"'])
    assert all(text_matches(c, o) for o in ["[[A]]", "[[B]]", 'say "hi"'])
    assert not text_matches(c, "[[C]]")
    with pytest.raises(ValueError):
        Constraint.choice([])


def test_text_matches_rejects_invalid_constraint():
    with pytest.raises(ConstraintError):
        text_matches(Constraint.regex("("), "x")


def test_banned_masks_for_a_mixed_batch():
    from transformers import AutoTokenizer

    from selflab.models import embedded
    from selflab.models.constraints import TokenMasks

    tokenizer = AutoTokenizer.from_pretrained(embedded.prepare())
    masks = TokenMasks(tokenizer, len(tokenizer) + 7, [tokenizer.eos_token_id])
    yes_no = masks.matcher(Constraint.regex("(yes|no)"))
    empty = masks.matcher(Constraint.regex(r"[^\s\S]"))
    banned, dead = masks.banned([(yes_no, 2), (empty, 0)], 3)
    assert banned.shape == (3, len(tokenizer) + 7) and banned.dtype == torch.bool
    assert not banned[1].any()  # an unconstrained row bans nothing
    allowed = [tokenizer.decode([t]) for t in (~banned[2]).nonzero().squeeze(1).tolist()]
    assert set(allowed) == {"y", "ye", "yes", "n", "no"}
    # An empty language still allows EOS (the engine then records an error: it does not accept).
    assert dead == [] and (~banned[0]).nonzero().squeeze(1).tolist() == [tokenizer.eos_token_id]
    assert torch.equal(masks.allowed([yes_no]), ~banned[2:3])


def test_cut_off_text_ending_in_a_partial_character_is_a_valid_prefix():
    """A `length` text can stop inside a multi-byte character, decoded as one U+FFFD: the openai
    backend must not record such a valid cut as a violation."""
    c = Constraint.regex("[αβ😀]{2,6}")
    assert mismatch(c, "αβ\ufffd", prefix=True) is None
    assert mismatch(c, "αβ\ufffd") is not None  # a finished text must match in full
    assert mismatch(c, "αx\ufffd", prefix=True) is not None


def test_boolean_json_schemas():
    """JSON Schema allows `true` (anything) and `false` (nothing); llguidance takes objects only."""
    anything = Constraint.json_schema("true")
    validate(anything)
    assert text_matches(anything, '[1, {"a": null}]') and mismatch(anything, "[1", prefix=True) is None
    with pytest.raises(ConstraintError, match="accepts no value"):
        validate(Constraint.json_schema("false"))


def test_seed_outside_the_generator_range_is_refused_at_once():
    with pytest.raises(ValueError):
        SamplingParams(seed=2**64)
    assert SamplingParams(seed=-1).seed == -1
