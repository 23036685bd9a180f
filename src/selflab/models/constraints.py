"""Constraints (regex, Lark grammar, JSON schema) compiled and enforced with llguidance.

Three uses, one library, so a constraint means the same thing everywhere:

- `validate(constraint)` when a request is submitted: an invalid regex, grammar or schema raises a
  `ConstraintError` naming the problem (llguidance's own message, with line and column);
- `text_matches(constraint, text)` checks finished text (a server that could not honour the
  constraint, tests). Regexes and grammars run through llguidance over bytes; JSON schemas are
  checked as JSON with `jsonschema`, since a valid object may order its keys differently from the
  schema while llguidance generates them in schema order;
- `TokenMasks` binds llguidance to one model's tokenizer: one `RowMatcher` per constrained request,
  and `allowed(...)` fills the next-token masks of all constrained rows of a batch in one call.

Why llguidance: it computes masks from the tokenizer in tens of microseconds per row, compiles no
code per grammar, has no dependencies, and takes the same Lark/regex/JSON-schema strings as vLLM and
llama.cpp, so a game's move grammar works unchanged on a local model and on a server.
"""

from __future__ import annotations

import json
from functools import lru_cache

import llguidance as llg
import numpy as np
import torch

from selflab.errors import SelflabError
from selflab.models.types import Constraint

_FORMATS = {"regex": "regex", "grammar": "lark", "json_schema": "json_schema"}
_FIXES = {
    "regex": "write a regular expression in Rust/Python syntax; it must match the whole completion",
    "grammar": "write a Lark grammar with a `start:` rule (llguidance syntax: docs/structured-generation.md)",
    "json_schema": "pass a JSON schema object (Constraint.json_schema(dict) serialises it for you)",
}


# Generated JSON is laid out like Python's json.dumps: one space after ':' and ',', no other
# whitespace. Free whitespace lets a small model pad forever with newlines instead of writing values.
# A schema may override it with llguidance's "x-guidance" key, e.g. {"whitespace_flexible": true}.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


class ConstraintError(SelflabError):
    """A regex, grammar or JSON schema that cannot be compiled."""


def _short(message: str, limit: int = 600) -> str:
    message = message.strip()
    return message if len(message) <= limit else message[:limit] + " ..."


def _schema_object(value: str) -> str:
    """The schema as an object for llguidance, which rejects the boolean schemas JSON Schema allows
    (`true` accepts any value: `{}`; `false` accepts none, so it is refused here)."""
    schema = json.loads(value)
    if schema is True:
        return "{}"
    if schema is False:
        raise ValueError("the schema `false` accepts no value at all")
    if not isinstance(schema, dict):
        raise ValueError("a JSON schema must be an object or a boolean")
    return value


@lru_cache(maxsize=512)
def _compile(kind: str, value: str) -> str:
    """The llguidance grammar for (kind, value), validated; cached because games repeat grammars."""
    try:
        if kind == "json_schema":
            grammar = llg.LLMatcher.grammar_from_json_schema(_schema_object(value), defaults=JSON_LAYOUT)
        else:
            grammar = llg.grammar_from(_FORMATS[kind], value)  # type: ignore[arg-type]
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise ConstraintError(f"invalid {kind} constraint: {_short(str(exc))}", _FIXES[kind]) from exc
    is_error, messages = llg.LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        raise ConstraintError(f"invalid {kind} constraint: {_short(messages[0])}", _FIXES[kind])
    return grammar


def validate(constraint: Constraint) -> str:
    """Check a constraint; returns its llguidance grammar. Raises ConstraintError when invalid."""
    if not isinstance(constraint, Constraint):
        raise ConstraintError(
            f"a constraint must be a selflab Constraint, got {type(constraint).__name__}",
            "use Constraint.regex(...), Constraint.grammar(...) or Constraint.json_schema(...)",
        )
    return _compile(constraint.kind, constraint.value)


# ---------------------------------------------------------------- checking finished text


class _ByteTokenizer:
    """A 256-token byte vocabulary (plus EOS) so llguidance can match any text exactly."""

    eos_token_id = 256
    bos_token_id = None
    tokens = [bytes([i]) for i in range(256)] + [b"\xff<eos>"]
    special_token_ids = [256]

    def __call__(self, text: bytes) -> list[int]:
        return list(text)


@lru_cache(maxsize=1)
def _byte_tokenizer() -> llg.LLTokenizer:
    return llg.LLTokenizer(llg.TokenizerWrapper(_ByteTokenizer()))


def mismatch(constraint: Constraint, text: str, prefix: bool = False) -> str | None:
    """Why `text` does not satisfy `constraint` (a short reason), or None when it does. With
    `prefix=True`, any text that a longer text could still complete is accepted (a cut-off output)."""
    grammar = validate(constraint)
    if constraint.kind == "json_schema" and not prefix:
        import jsonschema

        try:
            value = json.loads(text)
        except ValueError as exc:
            return f"not JSON: {exc}"
        schema = json.loads(constraint.value)
        try:
            validator = jsonschema.validators.validator_for(schema)(schema)
            error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        except (jsonschema.exceptions.SchemaError, jsonschema.exceptions.RefResolutionError) as exc:
            return f"the schema cannot be checked: {_short(str(exc), 200)}"
        return None if error is None else f"JSON does not match the schema: {error.message}"
    if constraint.kind == "json_schema":  # a prefix in any layout, keys in schema order
        grammar = llg.LLMatcher.grammar_from_json_schema(
            _schema_object(constraint.value), defaults={"whitespace_flexible": True}
        )
    matcher = llg.LLMatcher(_byte_tokenizer(), grammar, log_level=0)
    if prefix:
        # A text cut by max_new_tokens can end inside a multi-byte character, which decoders (ours,
        # vLLM's) render as one U+FFFD (Python's "replace"): the start of a character, not a violation.
        text = text.removesuffix("\ufffd")
    data = text.encode("utf-8")
    done = matcher.try_consume_tokens(list(data))
    if done < len(data):
        where = len(data[:done].decode("utf-8", "replace"))
        return f"the text leaves the {constraint.kind} at character {where}: {text[where : where + 20]!r}"
    if not prefix and not matcher.is_accepting():
        return f"the text is an unfinished prefix of the {constraint.kind}"
    return None


def text_matches(constraint: Constraint, text: str) -> bool:
    """Whether the whole `text` satisfies the constraint (regex full match, grammar, JSON schema)."""
    return mismatch(constraint, text) is None


# ---------------------------------------------------------------- token masks for the engine


class RowMatcher:
    """The grammar state of one constrained request: which tokens may come next, and when it is done."""

    def __init__(self, matcher: llg.LLMatcher) -> None:
        self.matcher = matcher

    def consume(self, token: int) -> bool:
        """Advance by one generated token; False if the grammar rejects it (never happens for a
        token chosen under this row's mask)."""
        return bool(self.matcher.consume_token(token))

    @property
    def complete(self) -> bool:
        """The grammar is satisfied and cannot be extended: the request is finished."""
        return bool(self.matcher.is_stopped()) and not self.matcher.is_error()

    @property
    def accepting(self) -> bool:
        return bool(self.matcher.is_accepting())

    @property
    def error(self) -> str:
        return str(self.matcher.get_error())


class TokenMasks:
    """llguidance bound to one tokenizer. `vocab_size` is the width of the model's logits (it may
    exceed the tokenizer's); `eos_ids` are the tokens that end a completion (allowed only where the
    grammar accepts)."""

    def __init__(self, tokenizer, vocab_size: int, eos_ids: list[int]) -> None:
        import llguidance.hf

        self.vocab_size = int(vocab_size)
        try:
            self.tokenizer = llguidance.hf.from_tokenizer(
                tokenizer, n_vocab=self.vocab_size, eos_token=sorted(eos_ids) or None
            )
        except ValueError as exc:
            raise SelflabError(
                f"constrained generation needs a fast (Rust) tokenizer: {exc}",
                "load the model with a tokenizer.json (fast tokenizer)",
            ) from exc
        self.executor = llg.LLExecutor()
        self.words = (self.vocab_size + 31) // 32

    def matcher(self, constraint: Constraint) -> RowMatcher:
        """A fresh matcher for one request. Raises ConstraintError when the constraint is invalid
        (including errors only the tokenizer reveals)."""
        grammar = validate(constraint)
        matcher = llg.LLMatcher(self.tokenizer, grammar, log_level=0)
        if matcher.is_error():
            raise ConstraintError(
                f"invalid {constraint.kind} constraint: {_short(matcher.get_error())}",
                _FIXES[constraint.kind],
            )
        return RowMatcher(matcher)

    def banned(self, matchers: list[tuple[RowMatcher, int]], rows: int) -> tuple[torch.Tensor, list[int]]:
        """Next-token masks for a batch of `rows` rows, of which `matchers` lists the constrained
        ones as (matcher, row). Returns (bool (rows, vocab_size), True where a token is NOT allowed;
        rows without a matcher are all False) and the rows whose grammar allows no token at all.

        All masks come from one llguidance call (it spreads rows over its threads and releases the
        GIL, so it can overlap the forward pass); bits are unpacked with numpy and shared, not copied,
        with the returned tensor."""
        bits = np.full((rows, self.words), -1, dtype=np.int32)
        self.executor.unsafe_compute_mask_ptr(
            [(m.matcher, r) for m, r in matchers], bits.ctypes.data, self.words * 4, rows
        )
        dead = [r for _, r in matchers if not bits[r].any()]
        flags = np.unpackbits((~bits).view(np.uint8), axis=1, count=self.vocab_size, bitorder="little")
        return torch.from_numpy(flags).view(torch.bool), dead

    def allowed(self, matchers: list[RowMatcher]) -> torch.Tensor:
        """Boolean masks (len(matchers), vocab_size): True where the token may come next."""
        banned, _ = self.banned([(m, r) for r, m in enumerate(matchers)], len(matchers))
        return ~banned
