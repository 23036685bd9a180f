"""Model spec options: a typo'd, blank or repeated option is a clear `ModelSpecError` naming the
fix, never silently dropped or left to fail deep inside torch (no model is loaded here)."""

from __future__ import annotations

import pytest

from selflab.errors import ModelSpecError
from selflab.models.registry import _coerce
from selflab.models.spec import parse_spec


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("openai:m@http://127.0.0.1:8000/v1?timeout=", "has no value"),
        ("openai:m@http://127.0.0.1:8000/v1?timeout=1&timeout=2", "given twice"),
        ("smollm2-135m?dtype=&threads=1", "has no value"),
    ],
)
def test_blank_or_repeated_options_are_refused(spec, needle):
    with pytest.raises(ModelSpecError, match=needle) as info:
        parse_spec(spec)
    assert info.value.fix


def test_options_still_parse():
    spec = parse_spec("openai:m@http://127.0.0.1:8000/v1?timeout=5&constraints=vllm")
    assert spec.options == {"timeout": "5", "constraints": "vllm"}


@pytest.mark.parametrize("value", ["0", "-3"])
def test_threads_below_one_is_a_spec_error_not_a_torch_runtime_error(value):
    with pytest.raises(ModelSpecError, match="threads"):
        _coerce({"threads": value})
    assert _coerce({"threads": "auto"}) == {"threads": "auto"}
    assert _coerce({"threads": "2"}) == {"threads": 2}
