"""Batch generation over a prompt file: the simplest end-to-end use of the model runtime.

Reads prompts (plain lines, or JSONL with "prompt" or "messages"), sends them all to the model at
once (so a local engine batches them), writes one JSON line per completion, and reports
throughput.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from selflab.errors import SelflabError
from selflab.models.types import Completion, GenerationRequest, LanguageModel, Message, SamplingParams


class GenerateConfig(BaseModel):
    model: str = Field("smollm2-135m", description="Model spec.")
    temperature: float = Field(0.0, ge=0.0, le=10.0, description="Sampling temperature; 0 = greedy.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    top_k: int = Field(0, ge=0, description="Sample from the k likeliest tokens (0: all).")
    max_new_tokens: int = Field(64, ge=1, le=32768, description="Tokens to generate per prompt.")
    stop: list[str] = Field(default_factory=list, description="Stop strings.")
    seed: int = Field(0, description="Base seed; prompt i uses seed + i.")
    system: str | None = Field(None, description="System prompt.")
    chunk_size: int = Field(64, ge=1, description="Requests submitted to the model per call.")


class GenerationRecord(BaseModel):
    id: int
    prompt: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    error: str | None = None


def read_prompts(source: str) -> list[list[Message]]:
    """Prompts from a file path or '-' (stdin): one per line, or JSONL objects with a "prompt"
    string or a "messages" list."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise SelflabError(
            f"cannot read prompt file {source}: {exc.strerror or exc}", "check the path and its permissions"
        ) from exc
    except UnicodeDecodeError as exc:
        raise SelflabError(
            f"prompt file {source} is not UTF-8 text", "save it as UTF-8 text, one prompt per line"
        ) from exc
    prompts: list[list[Message]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                if "messages" in obj:
                    prompts.append([Message(**m) for m in obj["messages"]])
                else:
                    prompts.append([Message(role="user", content=str(obj["prompt"]))])
            except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
                raise SelflabError(
                    f"{source}:{lineno} is not a valid JSON prompt ({type(exc).__name__})",
                    'write {"prompt": "..."} or {"messages": [{"role": "user", "content": "..."}]} per line',
                ) from exc
        else:
            prompts.append([Message(role="user", content=line)])
    if not prompts:
        raise SelflabError(f"no prompts found in {source}", "put one prompt per line")
    return prompts


def run_generation(
    model: LanguageModel,
    prompts: list[list[Message]],
    config: GenerateConfig,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[list[GenerationRecord], float]:
    """Generate for every prompt; returns the records and the wall time in seconds."""
    try:
        base = SamplingParams(
            temperature=config.temperature,
            top_p=config.top_p,
            top_k=config.top_k,
            max_new_tokens=config.max_new_tokens,
            stop=tuple(config.stop),
        )
    except ValidationError as exc:
        raise SelflabError(
            f"invalid sampling settings: {exc.errors()[0]['msg']}",
            "check --temperature/--top-p/--max-new-tokens",
        ) from exc
    requests = []
    for i, msgs in enumerate(prompts):
        if config.system:
            msgs = [Message(role="system", content=config.system), *msgs]
        # Per-request seeds: sample i is reproducible whatever else shares its batch.
        requests.append(
            GenerationRequest(
                messages=tuple(msgs), sampling=base.model_copy(update={"seed": config.seed + i})
            )
        )
    records: list[GenerationRecord] = []
    start = time.perf_counter()
    for lo in range(0, len(requests), config.chunk_size):
        chunk = requests[lo : lo + config.chunk_size]
        outs: list[Completion] = model.generate(chunk)
        for j, (req, out) in enumerate(zip(chunk, outs, strict=True)):
            records.append(
                GenerationRecord(
                    id=lo + j,
                    prompt=req.messages[-1].content,
                    text=out.text,
                    finish_reason=out.finish_reason,
                    prompt_tokens=out.prompt_tokens,
                    completion_tokens=out.completion_tokens,
                    error=out.error,
                )
            )
        if on_progress:
            on_progress(len(chunk))
    return records, time.perf_counter() - start
