"""Constraints on the wire: how each OpenAI-compatible server dialect spells a regex, a grammar or a
JSON schema in a request body, both ways.

- `request_fields(constraint, dialect)` gives the fields the `openai:` backend adds to a request;
- `from_body(body)` reads a constraint from a request `selflab serve` received, accepting OpenAI's
  `response_format`, vLLM's `structured_outputs` and its older `guided_*` fields, and llama.cpp's
  `json_schema` and `grammar` (GBNF, converted to Lark by llguidance, or `%llguidance` Lark).

Dialects (the `constraints=` option of an `openai:` model spec):

    auto                 response_format for JSON schemas; structured_outputs for regex/grammar
                         (vLLM >= 0.10 and selflab serve). The default.
    openai               response_format json_schema only (hosted OpenAI); regex/grammar: validate
    vllm                 structured_outputs {json|regex|grammar}
    vllm-legacy          guided_json / guided_regex / guided_grammar (vLLM before 0.12)
    llamacpp             top-level json_schema; regex/grammar: validate (GBNF is not Lark)
    llamacpp-llguidance  json_schema, and grammar="%llguidance {}\\n<lark>" (llama.cpp built with
                         -DLLAMA_LLGUIDANCE=ON reads Lark through llguidance)
    validate             nothing is sent; the output is checked afterwards
    reject               a request with a constraint raises ConstraintError

Whatever the dialect, the backend checks every finished output against its constraint, so a server
that ignored the field is caught (recorded as a parse failure), never passed on silently.
"""

from __future__ import annotations

import json
from typing import Any

import llguidance as llg
from pydantic import ValidationError

from selflab.models.constraints import ConstraintError
from selflab.models.types import Constraint

DIALECTS = ("auto", "openai", "vllm", "vllm-legacy", "llamacpp", "llamacpp-llguidance", "validate", "reject")


def check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ConstraintError(
            f"unknown constraints dialect {dialect!r}",
            f"use one of {', '.join(DIALECTS)} (e.g. openai:MODEL@URL?constraints=vllm)",
        )
    return dialect


def lark_of(constraint: Constraint) -> str:
    """A Lark grammar (llguidance syntax) for a regex or grammar constraint."""
    if constraint.kind == "grammar":
        return constraint.value
    if constraint.kind == "regex":
        return f"start: /{llg.regex_to_lark(constraint.value, '')}/"
    raise ValueError("JSON schemas are sent as schemas, not as Lark")


def request_fields(constraint: Constraint | None, dialect: str) -> dict[str, Any]:
    """Body fields that ask a server of `dialect` to enforce `constraint` ({} when it cannot)."""
    if constraint is None or dialect == "validate":
        return {}
    if dialect == "reject":
        raise ConstraintError(
            f"this model is configured with constraints=reject and got a {constraint.kind} constraint",
            "use another constraints= option (auto, vllm, openai, llamacpp, validate) or drop the constraint",
        )
    kind = constraint.kind
    schema = json.loads(constraint.value) if kind == "json_schema" else None
    if dialect in ("auto", "openai") and schema is not None:
        return {
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "selflab_constraint", "schema": schema, "strict": True},
            }
        }
    if dialect in ("auto", "vllm"):
        key = {"regex": "regex", "grammar": "grammar", "json_schema": "json"}[kind]
        return {"structured_outputs": {key: schema if schema is not None else constraint.value}}
    if dialect == "vllm-legacy":
        key = {"regex": "guided_regex", "grammar": "guided_grammar", "json_schema": "guided_json"}[kind]
        return {key: schema if schema is not None else constraint.value}
    if dialect in ("llamacpp", "llamacpp-llguidance"):
        if schema is not None:
            return {"json_schema": schema}
        if dialect == "llamacpp-llguidance":
            return {"grammar": "%llguidance {}\n" + lark_of(constraint)}
    return {}  # openai or llamacpp with a regex/grammar: validated afterwards


def _choice(options: Any) -> Constraint:
    if not isinstance(options, list) or not options or not all(isinstance(o, str) for o in options):
        raise ConstraintError("a choice constraint must be a non-empty list of strings", 'send ["yes", "no"]')
    return Constraint.grammar("start: " + " | ".join(json.dumps(o) for o in options))


def _schema(value: Any) -> Constraint:
    return Constraint.json_schema(value if isinstance(value, str | dict) else json.dumps(value))


def _gbnf(text: str) -> Constraint:
    from llguidance.gbnf_to_lark import any_to_lark

    try:
        lark = any_to_lark(text)
    except Exception as exc:  # the converter raises plain exceptions on bad input
        raise ConstraintError(
            f"invalid GBNF grammar: {exc}", "check the grammar (llama.cpp GBNF or Lark)"
        ) from exc
    return Constraint.grammar(lark)


def from_body(body: dict[str, Any]) -> Constraint | None:
    """The one constraint a request body asks for, from any of the accepted spellings. Raises
    ConstraintError when a field is malformed or more than one constraint is given."""
    try:
        return _from_body(body)
    except ValidationError as exc:
        raise ConstraintError(
            f"malformed constraint: {exc.errors()[0]['msg']}", "send a non-empty value"
        ) from exc


def _from_body(body: dict[str, Any]) -> Constraint | None:
    found: list[tuple[str, Constraint]] = []
    fmt = body.get("response_format")
    if fmt is not None:
        kind = fmt.get("type") if isinstance(fmt, dict) else None
        if kind == "json_schema":
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if schema is None:
                raise ConstraintError(
                    "response_format json_schema without a schema",
                    'send {"type": "json_schema", "json_schema": {"name": "x", "schema": {...}}}',
                )
            found.append(("response_format", _schema(schema)))
        elif kind == "json_object":
            found.append(("response_format", Constraint.json_schema({"type": "object"})))
        elif kind != "text":
            raise ConstraintError(
                f"unsupported response_format {fmt!r}", "use type json_schema, json_object or text"
            )
    structured = body.get("structured_outputs")
    if structured is not None:
        if not isinstance(structured, dict):
            raise ConstraintError("structured_outputs must be an object", 'send {"regex": "..."}')
        for key, value in structured.items():
            if value is None:
                continue
            if key == "regex":
                found.append((f"structured_outputs.{key}", Constraint.regex(str(value))))
            elif key == "grammar":
                found.append((f"structured_outputs.{key}", Constraint.grammar(str(value))))
            elif key == "json":
                found.append((f"structured_outputs.{key}", _schema(value)))
            elif key == "choice":
                found.append((f"structured_outputs.{key}", _choice(value)))
            else:
                raise ConstraintError(
                    f"unsupported structured_outputs field {key!r}", "use regex, grammar, json or choice"
                )
    legacy = {
        "guided_regex": Constraint.regex,
        "guided_grammar": Constraint.grammar,
        "guided_json": _schema,
        "guided_choice": _choice,
    }
    for key, make in legacy.items():
        if body.get(key) is not None:
            value = body[key]
            found.append((key, make(value if key in ("guided_json", "guided_choice") else str(value))))
    if body.get("json_schema") is not None:  # llama.cpp server
        found.append(("json_schema", _schema(body["json_schema"])))
    if body.get("grammar") is not None:  # llama.cpp server: GBNF, or Lark after %llguidance
        found.append(("grammar", _gbnf(str(body["grammar"]))))
    if len(found) > 1:
        raise ConstraintError(
            f"more than one constraint in one request ({', '.join(k for k, _ in found)})", "send only one"
        )
    return found[0][1] if found else None
