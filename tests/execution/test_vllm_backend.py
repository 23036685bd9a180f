"""The vllm: backend against a fake `vllm` module: clear errors where vLLM or a GPU is missing, and
the translation of our requests (seeds, logprobs, constraints, prompt scoring) into vLLM calls."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from selflab.errors import ModelSpecError, SelflabError
from selflab.models import load_model
from selflab.models.spec import parse_spec
from selflab.models.types import Constraint, GenerationRequest, SamplingParams, user


@dataclass
class Lp:
    logprob: float
    decoded_token: str | None = None


@dataclass
class Out:
    text: str
    token_ids: list[int]
    logprobs: Any
    finish_reason: str


@dataclass
class ReqOut:
    prompt_token_ids: list[int]
    outputs: list[Out]
    prompt_logprobs: Any = None


class Params:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


@dataclass
class FakeLLM:
    model: str
    structured_outputs_config: dict = field(default_factory=dict)
    gpu_memory_utilization: float = 0.9
    calls: list = field(default_factory=list)

    def get_tokenizer(self) -> Any:
        from transformers import AutoTokenizer

        from selflab.models import embedded

        return AutoTokenizer.from_pretrained(embedded.prepare())

    def generate(self, prompts: list[dict], params: Any, use_tqdm: bool = True) -> list[ReqOut]:
        self.calls.append((prompts, params))
        plist = params if isinstance(params, list) else [params] * len(prompts)
        outs = []
        for p, sp in zip(prompts, plist, strict=True):
            ids = p["prompt_token_ids"]
            if getattr(sp, "prompt_logprobs", None) is not None:
                plp = [None] + [{t: Lp(-0.5)} for t in ids[1:]]
                outs.append(ReqOut(ids, [Out("", [1], None, "length")], plp))
                continue
            lps = [{7: Lp(-1.0, "a")}, {8: Lp(-2.0, "b")}] if sp.logprobs else None
            outs.append(ReqOut(ids, [Out("ab", [7, 8], lps, "length" if sp.max_tokens == 2 else "stop")]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM  # type: ignore[attr-defined]
    mod.SamplingParams = Params  # type: ignore[attr-defined]
    sub = types.ModuleType("vllm.sampling_params")
    sub.StructuredOutputsParams = Params  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", mod)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sub)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    return mod


def test_missing_vllm_and_missing_gpu_are_clear_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails
    with pytest.raises(SelflabError, match=r"pip install 'selflab\[vllm\]'"):
        load_model("vllm:smollm2-135m", cache=False)
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SelflabError, match="needs a CUDA GPU"):
        load_model("vllm:smollm2-135m", cache=False)


def test_spec_parsing_and_bad_options(tmp_path) -> None:
    assert parse_spec("vllm:smollm2-135m").backend == "vllm"
    with pytest.raises(ModelSpecError, match="does not exist"):
        parse_spec(f"vllm:{tmp_path}/nothing")
    with pytest.raises(ModelSpecError, match="unknown option"):
        load_model("vllm:smollm2-135m?colour=red", cache=False)
    with pytest.raises(ModelSpecError, match="not a number"):
        load_model("vllm:smollm2-135m?gpu_memory_utilization=lots", cache=False)


def test_requests_become_vllm_params_per_request(fake_vllm: types.ModuleType) -> None:
    model = load_model("vllm:smollm2-135m?gpu_memory_utilization=0.5", cache=False)
    assert model.llm.gpu_memory_utilization == 0.5 and model.llm.structured_outputs_config == {
        "backend": "guidance"
    }
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    reqs = [
        GenerationRequest(
            messages=(user("hi"),), sampling=SamplingParams(temperature=0.7, seed=11, logprobs=True)
        ),
        GenerationRequest(
            prompt="raw text",
            sampling=SamplingParams(
                max_new_tokens=2, stop=("\n",), top_k=5, constraint=Constraint.regex(r"[0-9]+")
            ),
        ),  # fmt: skip
        GenerationRequest(
            messages=(user("json"),),
            assistant_prefix="{",
            sampling=SamplingParams(constraint=Constraint.json_schema(schema)),
        ),  # fmt: skip
        GenerationRequest(
            messages=(user("g"),), sampling=SamplingParams(constraint=Constraint.grammar('start: "x"'))
        ),
    ]
    outs = model.generate(reqs)
    prompts, params = model.llm.calls[-1]
    assert [p["prompt_token_ids"] for p in prompts] == [model.prompt_ids(r) for r in reqs]
    assert model.render([user("json")]) + "{" == model.tokenizer.decode(prompts[2]["prompt_token_ids"])
    p0, p1, p2, p3 = params
    assert (p0.temperature, p0.seed, p0.logprobs, p0.top_k, p0.stop) == (0.7, 11, 1, -1, None)
    assert (p1.max_tokens, p1.stop, p1.top_k, p1.structured_outputs.regex) == (2, ["\n"], 5, "[0-9]+")
    assert p2.structured_outputs.json == schema and p3.structured_outputs.grammar == 'start: "x"'
    assert outs[0].token_logprobs == [-1.0, -2.0] and outs[0].tokens == ["a", "b"]
    assert (
        outs[1].finish_reason == "length"
        and outs[1].token_logprobs is None
        and outs[2].finish_reason == "stop"
    )
    assert outs[0].completion_tokens == 2 and outs[0].prompt_tokens == len(prompts[0]["prompt_token_ids"])


def test_score_reads_prompt_logprobs(fake_vllm: types.ModuleType) -> None:
    model = load_model("vllm:smollm2-135m", cache=False)
    base = len(model._encode("The sky is", True))
    scores = model.score("The sky is", [" blue", " very blue indeed"])
    _, params = model.llm.calls[-1]
    assert params.prompt_logprobs == 0 and params.max_tokens == 1
    n1 = len(model._encode("The sky is blue", True)) - base
    n2 = len(model._encode("The sky is very blue indeed", True)) - base
    assert scores == [pytest.approx(-0.5 * n1), pytest.approx(-0.5 * n2)]
