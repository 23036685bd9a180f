"""Backend for any OpenAI-compatible HTTP server (vLLM, llama.cpp server, Ollama, hosted APIs,
or `selflab serve`).

The API key is read from an environment variable at call time and never stored on the object's
public state, written to disk, or logged. Transient failures (429, 5xx, connection errors,
timeouts) are retried with exponential backoff; after the last retry a `BackendError` says what
failed and what to check.

A request's constraint (regex, grammar, JSON schema) is validated before anything is sent, passed
on in the server's dialect (`constraints=` option, see `constraint_wire`), and every finished output
is checked against it: a violation comes back as `finish_reason="error"` with the reason, a parse
failure the caller records, never as text that merely looks valid.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from selflab.errors import BackendError
from selflab.models.constraint_wire import check_dialect, request_fields
from selflab.models.constraints import mismatch, validate
from selflab.models.types import Completion, GenerationRequest, Message

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class OpenAIModel:
    """`LanguageModel` over HTTP. `on_error="record"` turns a request that failed after all
    retries into a `Completion(finish_reason="error")` instead of raising, for long runs that
    must not die on one bad request."""

    def __init__(
        self,
        model: str,
        base_url: str,
        key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout: float = 60.0,
        retries: int = 4,
        backoff: float = 0.5,
        on_error: str = "raise",
        constraints: str = "auto",
    ) -> None:
        if on_error not in ("raise", "record"):
            raise BackendError(
                f"on_error must be 'raise' or 'record', not {on_error!r}", "fix the model spec option"
            )
        # Checked here: a zero/negative timeout or a negative backoff would otherwise surface mid-run
        # as a misleading error (time.sleep raises on a negative length).
        if not float(timeout) > 0 or not float(backoff) >= 0 or float(backoff) == float("inf"):
            raise BackendError(
                f"timeout must be > 0 and backoff >= 0 (got timeout={timeout}, backoff={backoff})",
                "fix the model spec options, e.g. ?timeout=60&backoff=0.5",
            )
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.name = f"openai:{model}@{self.base_url}"
        self.key_env = key_env
        self.concurrency = max(1, int(concurrency))
        self.retries = max(0, int(retries))
        self.backoff = float(backoff)
        self.on_error = on_error
        self.constraints = check_dialect(constraints)
        self._client = httpx.Client(timeout=httpx.Timeout(float(timeout)))
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="selflab-openai")
        self._jitter = random.Random(0)
        self._lock = threading.Lock()

    # -- HTTP ------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        last = ""
        for attempt in range(self.retries + 1):
            try:
                resp = self._client.post(url, json=payload, headers=self._headers())
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code == 200:
                    try:
                        return resp.json()
                    except ValueError:
                        last = "the server answered 200 with a body that is not JSON"
                elif resp.status_code in RETRY_STATUS:
                    last = f"HTTP {resp.status_code}: {resp.text[:200]}"
                else:
                    raise BackendError(
                        f"{url} answered HTTP {resp.status_code}: {resp.text[:300]}",
                        f"check the model name {self.model!r}, the request, and the key in ${self.key_env}",
                    )
            if attempt < self.retries:
                with self._lock:
                    jitter = self._jitter.uniform(0, self.backoff)
                time.sleep(self.backoff * (2**attempt) + jitter)
        raise BackendError(
            f"{url} failed after {self.retries + 1} attempts ({last})",
            "check that the server is running and reachable, or raise retries/timeout in the spec "
            "(e.g. ?retries=8&timeout=120)",
        )

    # -- LanguageModel -----------------------------------------------------------------------
    def _one(self, request: GenerationRequest) -> Completion:
        s = request.sampling
        common: dict[str, Any] = {
            "model": self.model,
            "max_tokens": s.max_new_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
        }
        if s.stop:
            common["stop"] = list(s.stop)
        if s.seed is not None:
            common["seed"] = s.seed
        if s.top_k:
            common["top_k"] = s.top_k  # vLLM / llama.cpp extension; ignored by servers without it
        common.update(request_fields(s.constraint, self.constraints))
        try:
            if request.prompt is not None:
                data = self._post(
                    "/completions",
                    {**common, "prompt": request.prompt, **({"logprobs": 1} if s.logprobs else {})},
                )
                choice = data["choices"][0]
                text = choice.get("text") or ""
                lp = choice.get("logprobs") or {}
                token_lps = lp.get("token_logprobs") if s.logprobs else None
                tokens = lp.get("tokens") if s.logprobs else None
            else:
                messages = [m.model_dump() for m in request.messages]
                if request.assistant_prefix:
                    messages.append({"role": "assistant", "content": request.assistant_prefix})
                data = self._post(
                    "/chat/completions", {**common, "messages": messages, "logprobs": s.logprobs}
                )
                choice = data["choices"][0]
                text = (choice.get("message") or {}).get("content") or ""
                content = (choice.get("logprobs") or {}).get("content") or []
                token_lps = [float(c["logprob"]) for c in content] if s.logprobs else None
                tokens = [str(c.get("token", "")) for c in content] if s.logprobs else None
            usage = data.get("usage") or {}
            finish = "length" if choice.get("finish_reason") == "length" else "stop"
            prompt_tokens = int(usage.get("prompt_tokens") or 0)
            completion_tokens = int(usage.get("completion_tokens") or 0)
            # A cut-off text cannot complete its grammar: if it is a valid start, it stays "length"
            # as in the local engine; text that already left the grammar is a violation.
            why = mismatch(s.constraint, text, prefix=finish == "length") if s.constraint else None
            if why is not None:
                return Completion(
                    text="",
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    finish_reason="error",
                    error=f"constraint violated: {why}; server text: {text[:300]!r}",
                )
            return Completion(
                text=text,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                finish_reason=finish,
                token_logprobs=token_lps,
                tokens=tokens,
            )
        except BackendError as exc:
            if self.on_error == "raise":
                raise
            return Completion(text="", finish_reason="error", error=str(exc))
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
            # AttributeError: a field of the wrong JSON type, e.g. "choices": ["text"] or "usage": 5
            err = BackendError(
                f"{self.base_url} returned an unexpected response shape ({exc})",
                "is it an OpenAI-compatible server?",
            )
            if self.on_error == "raise":
                raise err from exc
            return Completion(text="", finish_reason="error", error=str(err))

    def generate(self, requests: list[GenerationRequest]) -> list[Completion]:
        """Send requests concurrently (at most `concurrency` in flight); results keep input order.
        An invalid constraint (or any constraint under constraints=reject) raises ConstraintError
        before any request is sent."""
        for r in requests:
            if r.sampling.constraint is not None:
                validate(r.sampling.constraint)
                request_fields(r.sampling.constraint, self.constraints)
        return list(self._pool.map(self._one, requests))

    def score(self, prompt: str | list[Message], continuations: list[str]) -> list[float]:
        """Continuation log-likelihoods through `/completions` with `echo` and `logprobs`
        (supported by vLLM and `selflab serve`; hosted chat-only APIs cannot score)."""
        if not isinstance(prompt, str):
            raise BackendError(
                "the openai backend scores raw prompt strings only",
                "render the chat template yourself or use a local hf model for likelihood judging",
            )

        def one(cont: str) -> float:
            data = self._post(
                "/completions",
                {
                    "model": self.model,
                    "prompt": prompt + cont,
                    "echo": True,
                    "logprobs": 1,
                    "max_tokens": 0,
                    "temperature": 0.0,
                },
            )
            try:
                lp = data["choices"][0]["logprobs"]
                offsets, values = lp["text_offset"], lp["token_logprobs"]
            except (KeyError, IndexError, TypeError) as exc:
                raise BackendError(
                    f"{self.base_url} does not return prompt logprobs with echo=True",
                    "use a server that supports echo+logprobs (vLLM, selflab serve) or a local hf model",
                ) from exc
            return float(
                sum(v for o, v in zip(offsets, values, strict=False) if o >= len(prompt) and v is not None)
            )

        return list(self._pool.map(one, continuations))

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        self._client.close()
