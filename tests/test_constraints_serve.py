"""`selflab serve` with constraints and streaming, checked with the official `openai` client, and the
`openai:` backend passing constraints on in each dialect, against a real server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time

import jsonschema
import pytest

from selflab.models import load_model
from selflab.models.constraint_wire import from_body, request_fields
from selflab.models.constraints import ConstraintError, text_matches
from selflab.models.openai_backend import OpenAIModel
from selflab.models.testing import lively_tiny_llama
from selflab.models.types import Constraint, GenerationRequest, SamplingParams, user

openai = pytest.importorskip("openai")  # in the dev extra

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 6}, "ok": {"type": "boolean"}},
    "required": ["name", "ok"],
    "additionalProperties": False,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import uvicorn

    from selflab.models.server import create_app

    local = load_model(f"hf:{lively_tiny_llama(tmp_path_factory.mktemp('tiny'))}", cache=False)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(local), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield local, f"http://127.0.0.1:{port}/v1"
    server.should_exit = True
    thread.join(timeout=10)
    local.close()


@pytest.fixture(scope="module")
def client(served):
    return openai.OpenAI(base_url=served[1], api_key="unused", max_retries=0, timeout=60)


MESSAGES = [{"role": "user", "content": "Tell me a story about a dragon"}]


@pytest.mark.parametrize("stop", [None, ["e"], [" the", "xyz"]])
def test_streamed_chunks_concatenate_to_the_whole_text(client, stop):
    whole = client.chat.completions.create(
        model="m", messages=MESSAGES, max_tokens=40, temperature=0, stop=stop
    )
    chunks = list(
        client.chat.completions.create(
            model="m", messages=MESSAGES, max_tokens=40, temperature=0, stop=stop, stream=True
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content or "" for c in chunks]
    assert sum(1 for p in pieces if p) > (1 if stop is None else 0)  # token by token, not one blob
    assert "".join(pieces) == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason


def test_streamed_text_completion_and_usage(client):
    whole = client.completions.create(model="m", prompt="Once upon a time", max_tokens=30, temperature=0)
    chunks = list(
        client.completions.create(
            model="m",
            prompt="Once upon a time",
            max_tokens=30,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_response_format_json_schema_gives_valid_json(client):
    for seed in range(4):
        out = client.chat.completions.create(
            model="m",
            messages=MESSAGES,
            max_tokens=60,
            temperature=1.0,
            seed=seed,
            response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA}},
        )
        assert out.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(out.choices[0].message.content), SCHEMA)
    obj = client.chat.completions.create(
        model="m", messages=MESSAGES, max_tokens=60, response_format={"type": "json_object"}
    )
    if obj.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(obj.choices[0].message.content), dict)


@pytest.mark.parametrize(
    ("extra", "constraint"),
    [
        ({"structured_outputs": {"regex": "[0-9]{2,4}"}}, Constraint.regex("[0-9]{2,4}")),
        ({"guided_regex": "(yes|no)"}, Constraint.regex("(yes|no)")),
        (
            {"structured_outputs": {"grammar": 'start: "Score: " /[1-5]/'}},
            Constraint.grammar('start: "Score: " /[1-5]/'),
        ),
        ({"guided_grammar": 'start: "A" | "B"'}, Constraint.grammar('start: "A" | "B"')),
        ({"guided_choice": ["red", "green"]}, Constraint.grammar('start: "red" | "green"')),
        ({"structured_outputs": {"json": SCHEMA}}, Constraint.json_schema(SCHEMA)),
        ({"grammar": 'root ::= "up" | "down"'}, Constraint.grammar('start: "up" | "down"')),
    ],
)
def test_serve_honours_vllm_and_llamacpp_extension_fields(client, extra, constraint):
    for stream in (False, True):
        kwargs = {"model": "m", "messages": MESSAGES, "max_tokens": 40, "temperature": 0.9, "seed": 3}
        if stream:
            text = "".join(
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(**kwargs, stream=True, extra_body=extra)
                if c.choices
            )
        else:
            text = client.chat.completions.create(**kwargs, extra_body=extra).choices[0].message.content
        assert text_matches(constraint, text), (extra, text)


@pytest.mark.parametrize(
    "extra",
    [
        {"guided_regex": "[a-"},
        {"structured_outputs": {"grammar": "start: nowhere"}},
        {"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
        {"guided_regex": "a", "guided_grammar": 'start: "a"'},
    ],
)
def test_serve_rejects_bad_constraints_with_400(client, extra):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=MESSAGES, max_tokens=4, extra_body=extra)
    assert "fix:" in info.value.response.text  # the detail names the problem and the fix


REQUESTS = [
    Constraint.regex("(yes|no)"),
    Constraint.grammar('start: "Score: " /[1-5]/'),
    Constraint.json_schema(SCHEMA),
]


@pytest.mark.parametrize("dialect", ["auto", "vllm", "vllm-legacy"])
def test_openai_backend_passes_constraints_on(served, dialect):
    local, url = served
    remote = load_model(f"openai:tiny@{url}?constraints={dialect}", cache=False)
    requests = [
        GenerationRequest(
            messages=(user("Answer"),), sampling=SamplingParams(max_new_tokens=40, constraint=c)
        )
        for c in REQUESTS
    ]
    got = remote.generate(requests)
    want = local.generate(requests)
    for g, w, c in zip(got, want, REQUESTS, strict=True):
        assert g.finish_reason == "stop" and g.text == w.text
        assert text_matches(c, g.text)
    remote.close()


def test_openai_dialect_sends_json_by_response_format_and_checks_regex_afterwards(served):
    _, url = served
    remote = OpenAIModel("tiny", url, constraints="openai")
    json_out, regex_out = remote.generate(
        [
            GenerationRequest.chat("Answer", max_new_tokens=40, constraint=REQUESTS[2]),
            GenerationRequest.chat("Answer", max_new_tokens=12, constraint=REQUESTS[0]),
        ]
    )
    assert json_out.finish_reason == "stop" and text_matches(REQUESTS[2], json_out.text)
    # OpenAI has no regex option: nothing is sent, the free text fails the check, recorded as an error.
    assert regex_out.finish_reason == "error"
    assert "constraint violated" in regex_out.error and regex_out.text == ""
    remote.close()


def test_a_server_that_ignores_constraints_gives_recorded_failures_not_silent_text(served):
    _, url = served
    for dialect in ("validate", "llamacpp"):
        remote = OpenAIModel("tiny", url, constraints=dialect)
        out = remote.generate([GenerationRequest.chat("Answer", max_new_tokens=12, constraint=REQUESTS[0])])[
            0
        ]
        assert out.finish_reason == "error" and "constraint violated" in out.error
        remote.close()


def test_llamacpp_dialects_spell_constraints_as_llamacpp_does(served):
    assert request_fields(REQUESTS[2], "llamacpp") == {"json_schema": SCHEMA}
    assert request_fields(REQUESTS[0], "llamacpp") == {}
    lark = request_fields(REQUESTS[0], "llamacpp-llguidance")["grammar"]
    assert lark.startswith("%llguidance {}\n") and "start:" in lark
    # selflab serve reads llama.cpp's fields too, so the llguidance dialect round-trips through it.
    _, url = served
    remote = OpenAIModel("tiny", url, constraints="llamacpp-llguidance")
    outs = remote.generate(
        [GenerationRequest.chat("Answer", max_new_tokens=40, constraint=c) for c in REQUESTS]
    )
    assert all(
        o.finish_reason == "stop" and text_matches(c, o.text) for o, c in zip(outs, REQUESTS, strict=True)
    )
    remote.close()


def test_openai_backend_rejects_before_sending(served):
    _, url = served
    remote = OpenAIModel("tiny", url, constraints="reject")
    with pytest.raises(ConstraintError, match="constraints=reject"):
        remote.generate([GenerationRequest.chat("x", constraint=REQUESTS[0])])
    assert remote.generate([GenerationRequest.chat("x", max_new_tokens=2)])[0].finish_reason != "error"
    with pytest.raises(ConstraintError, match="invalid regex"):
        OpenAIModel("tiny", url).generate([GenerationRequest.chat("x", constraint=Constraint.regex("(("))])
    with pytest.raises(ConstraintError, match="unknown constraints dialect"):
        OpenAIModel("tiny", url, constraints="xgrammar")
    remote.close()


def test_from_body_reads_every_spelling():
    assert from_body({}) is None
    assert from_body({"response_format": {"type": "text"}}) is None
    assert from_body({"response_format": {"type": "json_object"}}).kind == "json_schema"
    assert from_body({"guided_json": SCHEMA}) == Constraint.json_schema(SCHEMA)
    assert from_body({"structured_outputs": {"choice": ["a", "b"]}}).value == 'start: "a" | "b"'
    with pytest.raises(ConstraintError, match="more than one"):
        from_body({"guided_regex": "a", "response_format": {"type": "json_object"}})
    with pytest.raises(ConstraintError):
        from_body({"structured_outputs": {"regex": ""}})
    with pytest.raises(ConstraintError):
        from_body({"guided_choice": []})


def test_raw_prompt_constraints_go_through_text_completions(served):
    local, url = served
    remote = OpenAIModel("tiny", url)
    requests = [
        GenerationRequest(prompt="Verdict:", sampling=SamplingParams(max_new_tokens=20, constraint=c))
        for c in REQUESTS
    ]
    got = remote.generate(requests)
    want = local.generate(requests)
    assert [g.text for g in got] == [w.text for w in want]
    assert all(
        g.finish_reason == "stop" and text_matches(c, g.text) for g, c in zip(got, REQUESTS, strict=True)
    )
    remote.close()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"messages": []}, "exactly one of"),
        ({"messages": [{"role": "assistant", "content": "x"}]}, "exactly one of"),
        ({"messages": MESSAGES, "n": 3}, "n=3"),
        ({"messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"messages": MESSAGES, "seed": 10**30}, "seed"),
        ({"messages": MESSAGES, "seed": 10**30, "stream": True}, "seed"),
        ({"messages": MESSAGES, "guided_grammar": "start: A\nA: /a/ & /b/"}, "cannot be completed"),
        # Only the tokenizer can tell; a stream used to answer 200 and report it inside the events.
        ({"messages": MESSAGES, "guided_grammar": "start: <|no_such|>", "stream": True}, "special token"),
    ],
)
def test_malformed_requests_get_400_not_500(served, body, needle):
    """Requests the client got wrong are answered 4xx with the reason (they were 500s, or for n and
    max_tokens=0, silently answered with something else)."""
    import httpx

    resp = httpx.post(f"{served[1]}/chat/completions", json={"max_tokens": 4, **body}, timeout=60)
    assert resp.status_code == 400, resp.text
    assert needle in resp.text


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"prompt": "", "echo": True, "max_tokens": 0, "logprobs": 1}, "non-empty prompt"),
        ({"prompt": "hello " * 3000, "echo": True, "max_tokens": 0, "logprobs": 1}, "fits the context"),
        ({"prompt": "", "max_tokens": 3}, "empty prompt"),
        ({"prompt": "hello " * 3000, "max_tokens": 3}, "context"),
    ],
)
def test_bad_text_completion_requests_get_400(served, body, needle):
    """Echo scoring of an empty or over-long prompt was a 500 (or a silent forward past the
    context). Echo with max_tokens > 0 is served (scoring clients such as lm-evaluation-harness
    send max_tokens=1 and read the prompt's logprobs)."""
    import httpx

    resp = httpx.post(f"{served[1]}/completions", json=body, timeout=60)
    assert resp.status_code == 400, resp.text
    assert needle in resp.text


def test_echo_with_max_tokens_scores_the_prompt(served):
    import httpx

    body = {"prompt": "hello there", "echo": True, "max_tokens": 1, "logprobs": 1}
    resp = httpx.post(f"{served[1]}/completions", json=body, timeout=60)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["logprobs"]["tokens"]
