"""Streaming a completion as text deltas, for `selflab serve`'s `"stream": true`.

`stream_completion(model, request)` yields `str` deltas as tokens arrive, then the final
`Completion`. The deltas always concatenate to exactly the final `Completion.text`:

- text is held back while it ends in an incomplete UTF-8 character (decoded as U+FFFD), and, when the
  request has stop strings, by the length of the longest one minus one, so text that a stop string
  later cuts off is never sent;
- whatever the deltas have not covered is sent at the end, from the final text.

A local model streams from its engine token by token; any other `LanguageModel` yields its whole
text as one delta.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from selflab.models.types import Completion, GenerationRequest, LanguageModel

_DONE = object()


def stream_completion(model: LanguageModel, request: GenerationRequest) -> Iterator[str | Completion]:
    """Submit `request` now and return the iterator of its deltas and final `Completion`. Submission
    is eager so that an invalid request (e.g. a constraint only the tokenizer rejects) raises here,
    while a server can still answer with a 4xx status, not inside an already started stream."""
    engine = getattr(model, "engine", None)
    prompt_ids = getattr(model, "prompt_ids", None)
    if engine is None or prompt_ids is None:
        return _whole(model, request)
    if request.sampling.constraint is not None:
        from selflab.models.constraints import validate

        validate(request.sampling.constraint)
    updates: queue.Queue = queue.Queue()
    future = engine.submit(prompt_ids(request), request.sampling, on_tokens=updates.put)
    future.add_done_callback(lambda _: updates.put(_DONE))
    return _deltas(engine.tokenizer, request, future, updates)


def _whole(model: LanguageModel, request: GenerationRequest) -> Iterator[str | Completion]:
    out = model.generate([request])[0]
    if out.text:
        yield out.text
    yield out


def _deltas(
    tokenizer: Any, request: GenerationRequest, future: Future, updates: queue.Queue
) -> Iterator[str | Completion]:
    hold = max((len(s) for s in request.sampling.stop), default=1) - 1
    try:
        yield from _until_done(tokenizer, future, updates, hold)
    finally:  # closed early (the client went away): stop the row rather than decode for nobody
        if not future.done() and hasattr(future, "abandon"):
            future.abandon()


def _until_done(
    tokenizer: Any, future: Future, updates: queue.Queue, hold: int
) -> Iterator[str | Completion]:
    sent = ""
    while True:
        item = updates.get()
        latest = None
        while item is not _DONE:  # skip to the newest token list already queued
            latest = item
            try:
                item = updates.get_nowait()
            except queue.Empty:
                break
        if latest is not None:
            text = tokenizer.decode(latest, skip_special_tokens=True)
            safe = text[: len(text) - hold] if hold else text
            safe = safe.rstrip("\ufffd")
            if len(safe) > len(sent) and safe.startswith(sent):
                yield safe[len(sent) :]
                sent = safe
        if item is _DONE:
            break
    out: Completion = future.result()
    if out.text.startswith(sent) and len(out.text) > len(sent):
        yield out.text[len(sent) :]
    yield out
