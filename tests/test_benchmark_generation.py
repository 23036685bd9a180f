"""benchmarks/generation.py's interleaved single stream (`generation_timing.interleaved`): both sides timed request by request, the
order alternating, each side's tokens, seconds and greedy texts kept apart; a failed call stops it."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path

import pytest

from selflab.models.types import Completion, GenerationRequest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _generation_module():
    sys.path.insert(0, str(BENCHMARKS))  # as the scripts run: their siblings importable
    try:
        spec = importlib.util.spec_from_file_location(
            "generation_timing", BENCHMARKS / "generation_timing.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


class _Fake:
    """A model that answers with fixed tokens after a fixed delay and logs who was called when."""

    def __init__(self, name: str, tokens: int, delay: float, log: list[tuple[str, int]], fail: bool = False):
        self.name, self.tokens, self.delay, self.log, self.fail = name, tokens, delay, log, fail

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        self.log.append((self.name, int(requests[0].messages[0].content)))
        time.sleep(self.delay)
        if self.fail:
            return [Completion(text="", finish_reason="error", error="server gone")]
        return [
            Completion(text=f"{self.name}:{requests[0].messages[0].content}", completion_tokens=self.tokens)
        ]


def test_interleaved_alternates_order_and_keeps_each_side_apart() -> None:
    generation = _generation_module()
    log: list[tuple[str, int]] = []
    ours, peer = _Fake("ours", 3, 0.02, log), _Fake("peer", 5, 0.0, log)
    requests = [
        GenerationRequest.chat(
            str(i), max_new_tokens=8, **({} if i % 2 == 0 else {"temperature": 0.7, "seed": i})
        )
        for i in range(4)
    ]
    (o_tok, o_sec, o_cpu, o_texts), (p_tok, p_sec, _, p_texts) = generation.interleaved(
        [ours, peer], requests
    )
    # Every request went to both, one after the other, the first side alternating.
    assert log == [("ours", 0), ("peer", 0), ("peer", 1), ("ours", 1), ("ours", 2), ("peer", 2), ("peer", 3), ("ours", 3)]  # fmt: skip
    assert (o_tok, p_tok) == (12, 20)
    assert o_sec >= 4 * 0.02 > p_sec  # each side's own calls only
    assert o_cpu >= 0.0
    assert o_texts == {0: "ours:0", 2: "ours:2"} and p_texts == {0: "peer:0", 2: "peer:2"}  # greedy ones


def test_interleaved_stops_at_a_failed_call() -> None:
    generation = _generation_module()
    log: list[tuple[str, int]] = []
    requests = [GenerationRequest.chat("0", max_new_tokens=8)]
    with pytest.raises(RuntimeError, match="server gone"):
        generation.interleaved([_Fake("ours", 1, 0.0, log), _Fake("peer", 1, 0.0, log, fail=True)], requests)
