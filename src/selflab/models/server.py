"""`selflab serve`: expose any `LanguageModel` (usually our batching engine) through an
OpenAI-compatible HTTP API, so external tools, other machines, or the `openai:` backend can use it.

Each HTTP request is handled on its own worker thread and calls `model.generate([request])`;
concurrent requests therefore meet in the engine and are batched together.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field, ValidationError

from selflab.models.types import GenerationRequest, LanguageModel, Message, SamplingParams


class ChatMessageIn(BaseModel):
    role: str
    content: str


class _Common(BaseModel):
    model: str | None = None
    max_tokens: int | None = Field(None, ge=0)
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: str | list[str] | None = None
    seed: int | None = None


class ChatIn(_Common):
    messages: list[ChatMessageIn]
    logprobs: bool = False


class CompletionIn(_Common):
    prompt: str
    echo: bool = False
    logprobs: int | None = None


def _sampling(body: _Common, logprobs: bool) -> SamplingParams:
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    try:
        return SamplingParams(
            temperature=body.temperature,
            top_p=body.top_p,
            top_k=body.top_k,
            max_new_tokens=max(1, body.max_tokens or 128),
            stop=stop,
            seed=body.seed,
            logprobs=logprobs,
        )
    except ValidationError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc


def _prompt_logprobs(model: Any, text: str) -> dict[str, list[Any]]:
    """Per-token logprobs of `text` itself (for echo=True), with character offsets, as vLLM returns."""
    import torch

    tok = model.tokenizer
    enc = tok(text, return_offsets_mapping=True, add_special_tokens=False)
    ids = enc["input_ids"]
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

    @app.post("/v1/chat/completions")
    def chat(body: ChatIn) -> dict[str, Any]:
        try:
            messages = tuple(Message(role=m.role, content=m.content) for m in body.messages)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from exc
        prefix = ""
        if messages and messages[-1].role == "assistant":
            prefix, messages = messages[-1].content, messages[:-1]
        req = GenerationRequest(
            messages=messages, sampling=_sampling(body, body.logprobs), assistant_prefix=prefix
        )
        out = model.generate([req])[0]
        if out.finish_reason == "error":
            raise HTTPException(status_code=500, detail=out.error or "generation failed")
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
            "usage": {
                "prompt_tokens": out.prompt_tokens,
                "completion_tokens": out.completion_tokens,
                "total_tokens": out.prompt_tokens + out.completion_tokens,
            },
        }

    @app.post("/v1/completions")
    def completions(body: CompletionIn) -> dict[str, Any]:
        if body.echo:
            if not hasattr(model, "tokenizer"):
                raise HTTPException(status_code=400, detail="echo with logprobs needs a local model")
            lp = _prompt_logprobs(model, body.prompt)
            return {
                "id": f"cmpl-{uuid.uuid4().hex[:12]}",
                "object": "text_completion",
                "model": name,
                "choices": [{"index": 0, "text": body.prompt, "logprobs": lp, "finish_reason": "length"}],
                "usage": {"prompt_tokens": len(lp["tokens"]), "completion_tokens": 0},
            }
        req = GenerationRequest(prompt=body.prompt, sampling=_sampling(body, bool(body.logprobs)))
        out = model.generate([req])[0]
        if out.finish_reason == "error":
            raise HTTPException(status_code=500, detail=out.error or "generation failed")
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
