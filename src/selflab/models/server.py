"""`selflab serve`: expose any `LanguageModel` (usually our batching engine) through an
OpenAI-compatible HTTP API, so external tools, other machines, or the `openai:` backend can use it.

Each HTTP request is handled on its own worker thread and calls `model.generate([request])`;
concurrent requests therefore meet in the engine and are batched together.

Beyond the basic API:
- constraints: OpenAI's `response_format` (`json_schema`, `json_object`), vLLM's `structured_outputs`
  (`regex`, `grammar` (Lark), `json`, `choice`) and its older `guided_regex` / `guided_grammar` /
  `guided_json` / `guided_choice`, llama.cpp's `json_schema` and `grammar` (GBNF), honoured with the engine's token masks (`constraint_wire`);
  an invalid constraint is answered with HTTP 400 naming the problem;
- `"stream": true` answers with server-sent events (`chat.completion.chunk` or `text_completion`
  chunks, then `data: [DONE]`), token by token from the engine (`streaming`); with
  `stream_options.include_usage` a last chunk carries the usage.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from selflab.models.constraint_wire import from_body
from selflab.models.constraints import ConstraintError, validate
from selflab.models.streaming import stream_completion
from selflab.models.types import Completion, GenerationRequest, LanguageModel, Message, SamplingParams


class ChatMessageIn(BaseModel):
    role: str
    content: str


class _Common(BaseModel):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=0)
    n: int = 1  # one choice per request; anything else is refused (400), not silently ignored
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    # Constraints (see constraint_wire.from_body for the accepted spellings).
    response_format: dict[str, Any] | None = None
    structured_outputs: dict[str, Any] | None = None
    guided_regex: str | None = None
    guided_grammar: str | None = None
    guided_json: dict[str, Any] | str | None = None
    guided_choice: list[str] | None = None
    json_schema: dict[str, Any] | None = None  # llama.cpp server
    grammar: str | None = None  # llama.cpp server: GBNF (or Lark after %llguidance)


class ChatIn(_Common):
    messages: list[ChatMessageIn]
    logprobs: bool = False


class CompletionIn(_Common):
    prompt: str
    echo: bool = False
    logprobs: int | None = None


def _sampling(body: _Common, logprobs: bool) -> SamplingParams:
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    if body.n != 1:
        raise HTTPException(
            status_code=400, detail=f"n={body.n} is not supported\n  fix: send n=1 (one request per choice)"
        )
    if body.max_tokens == 0:  # 0 is only meaningful for echo scoring, never "the default length"
        raise HTTPException(
            status_code=400,
            detail="max_tokens=0 asks for no completion\n  fix: send max_tokens >= 1 (or omit it for 128)",
        )
    try:
        constraint = from_body(body.model_dump())
        if constraint is not None:
            validate(constraint)
        return SamplingParams(
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
            max_new_tokens=128 if body.max_tokens is None else body.max_tokens,
            stop=stop,
            seed=body.seed,
            logprobs=logprobs,
            constraint=constraint,
        )
    except ValidationError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    except ConstraintError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


def _request(**fields: Any) -> GenerationRequest:
    """A GenerationRequest, or HTTP 400 when the body cannot make one (e.g. no messages)."""
    try:
        return GenerationRequest(**fields)
    except ValidationError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


# Error completions caused by the request itself (engine messages): the client must hear 400, not 500.
_CLIENT_ERRORS = ("the constraint cannot be completed", "empty prompt", "prompt has ")


def _generate(model: LanguageModel, req: GenerationRequest) -> Completion:
    try:
        out = model.generate([req])[0]
    except ConstraintError as exc:  # e.g. only the tokenizer can tell the grammar is invalid
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    if out.finish_reason == "error":
        error = out.error or "generation failed"
        status = 400 if error.startswith(_CLIENT_ERRORS) else 500
        raise HTTPException(status_code=status, detail=error)
    return out


def _sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def _events(
    items: Iterator[str | Completion], req: GenerationRequest, head: dict[str, Any], chat: bool, usage: bool
) -> Iterator[str]:
    """Server-sent events of one streamed completion: role, text deltas, finish, [usage], [DONE]."""

    def chunk(delta: str | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        if chat:
            choice: dict[str, Any] = {"index": 0, "delta": {} if delta is None else {"content": delta}}
        else:
            choice = {"index": 0, "text": delta or "", "logprobs": None}
        return {**head, "choices": [{**choice, "finish_reason": finish, **extra}]}

    if chat:
        yield _sse(
            {
                **head,
                "choices": [
                    {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                ],
            }
        )
    out: Completion | None = None
    try:
        for item in items:
            if isinstance(item, Completion):
                out = item
            else:
                yield _sse(chunk(item))
    except Exception as exc:  # the status line is already sent: report in the stream
        yield _sse({"error": {"message": f"{type(exc).__name__}: {exc}", "type": "server_error"}})
        yield _sse("[DONE]")
        return
    assert out is not None
    if out.finish_reason == "error":
        yield _sse({"error": {"message": out.error or "generation failed", "type": "server_error"}})
    else:
        extra: dict[str, Any] = {}
        if chat and req.sampling.logprobs and out.token_logprobs is not None:
            toks = out.tokens or [""] * len(out.token_logprobs)
            extra["logprobs"] = {
                "content": [
                    {"token": t, "logprob": v} for t, v in zip(toks, out.token_logprobs, strict=False)
                ]
            }
        yield _sse(chunk(None, out.finish_reason, **extra))
        if usage:
            yield _sse({**head, "choices": [], "usage": _usage(out)})
    yield _sse("[DONE]")


def _usage(out: Completion) -> dict[str, int]:
    return {
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "total_tokens": out.prompt_tokens + out.completion_tokens,
    }


def _streamed(
    model: LanguageModel, req: GenerationRequest, body: _Common, chat: bool, name: str
) -> StreamingResponse:
    head = {
        "id": f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk" if chat else "text_completion",
        "created": int(time.time()),
        "model": name,
    }
    usage = bool((body.stream_options or {}).get("include_usage"))
    try:  # submitted before the 200 status line, so a request only the engine rejects still gets 400
        items = stream_completion(model, req)
    except ConstraintError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    return StreamingResponse(_events(items, req, head, chat, usage), media_type="text/event-stream")


def _prompt_logprobs(model: Any, text: str) -> dict[str, list[Any]]:
    """Per-token logprobs of `text` itself (for echo=True), with character offsets, as vLLM returns."""
    import torch

    tok = model.tokenizer
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    ids = enc["input_ids"]
    # Checked here, not left to the forward pass: an empty prompt or one past the context is the
    # request's fault (400), not a server error.
    limit = getattr(getattr(model, "engine", None), "max_len", None)
    if not ids or (limit is not None and len(ids) > limit):
        raise HTTPException(
            status_code=400,
            detail=f"cannot score a prompt of {len(ids)} tokens (the model's context is {limit})\n"
            "  fix: send a non-empty prompt that fits the context",
        )
    with torch.inference_mode():
        logits = model.model(torch.tensor([ids], device=model.device)).logits[0].float()
    logp = torch.log_softmax(logits, dim=-1)
    values: list[float | None] = [None]
    for i in range(1, len(ids)):
        values.append(float(logp[i - 1, ids[i]]))
    return {
        "tokens": [tok.decode([t]) for t in ids],
        "token_logprobs": values,
        "text_offset": [int(a) for a, _ in enc["offset_mapping"]],
    }


def create_app(model: LanguageModel, served_name: str | None = None, worker_threads: int = 64) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Enough worker threads that many concurrent HTTP requests reach the engine together.
        anyio.to_thread.current_default_thread_limiter().total_tokens = worker_threads
        yield

    app = FastAPI(title="selflab serve", version="0.1", lifespan=lifespan)
    name = served_name or model.name

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "selflab"}]}

    @app.post("/v1/chat/completions", response_model=None)
    def chat(body: ChatIn) -> dict[str, Any] | StreamingResponse:
        try:
            messages = tuple(Message(role=m.role, content=m.content) for m in body.messages)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        prefix = ""
        if messages and messages[-1].role == "assistant":
            prefix, messages = messages[-1].content, messages[:-1]
        req = _request(messages=messages, sampling=_sampling(body, body.logprobs), assistant_prefix=prefix)
        if body.stream:
            return _streamed(model, req, body, True, name)
        out = _generate(model, req)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": out.text},
            "finish_reason": out.finish_reason,
        }
        if body.logprobs and out.token_logprobs is not None:
            toks = out.tokens or [""] * len(out.token_logprobs)
            choice["logprobs"] = {
                "content": [
                    {"token": t, "logprob": v} for t, v in zip(toks, out.token_logprobs, strict=False)
                ]
            }
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [choice],
            "usage": _usage(out),
        }

    @app.post("/v1/completions", response_model=None)
    def completions(body: CompletionIn) -> dict[str, Any] | StreamingResponse:
        if body.echo:
            if not hasattr(model, "tokenizer"):
                raise HTTPException(status_code=400, detail="echo with logprobs needs a local model")
            # echo scores the prompt only; max_tokens is not refused, since scoring clients such as
            # lm-evaluation-harness send max_tokens=1 with echo and read only the prompt's logprobs
            lp = _prompt_logprobs(model, body.prompt)
            return {
                "id": f"cmpl-{uuid.uuid4().hex[:12]}",
                "object": "text_completion",
                "model": name,
                "choices": [{"index": 0, "text": body.prompt, "logprobs": lp, "finish_reason": "length"}],
                "usage": {"prompt_tokens": len(lp["tokens"]), "completion_tokens": 0},
            }
        req = _request(prompt=body.prompt, sampling=_sampling(body, bool(body.logprobs)))
        if body.stream:
            return _streamed(model, req, body, False, name)
        out = _generate(model, req)
        logprobs = None
        if body.logprobs and out.token_logprobs is not None:
            logprobs = {"tokens": out.tokens, "token_logprobs": out.token_logprobs}
        return {
            "id": f"cmpl-{uuid.uuid4().hex[:12]}",
            "object": "text_completion",
            "model": name,
            "choices": [
                {"index": 0, "text": out.text, "logprobs": logprobs, "finish_reason": out.finish_reason}
            ],
            "usage": {"prompt_tokens": out.prompt_tokens, "completion_tokens": out.completion_tokens},
        }

    return app


def serve(model: LanguageModel, host: str = "127.0.0.1", port: int = 8000, worker_threads: int = 64) -> None:
    """Run the server in the foreground (blocking)."""
    import uvicorn

    uvicorn.run(create_app(model, worker_threads=worker_threads), host=host, port=port, log_level="warning")
