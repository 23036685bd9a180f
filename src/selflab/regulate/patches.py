"""Amendments: a model proposes adding, editing or deleting one principle, in a fixed format.

Model output is untrusted: `parse_patch` accepts the line format (or a JSON object), checks the
operation against the constitution, and returns a parse error instead of raising. An unparsable
proposal is recorded as such and never applied.

Line format (the model is started after "OP:" so even a small model stays in it):

    OP: add | edit | delete
    ID: P<n>          (edit/delete: an existing id; add: ignored, a fresh id is assigned)
    TEXT: <the principle, one line>
    RATIONALE: <why, one line>
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import BaseModel

from selflab.models.types import Constraint
from selflab.regulate.constitution import MAX_PRINCIPLE_CHARS, Constitution, Principle, Provenance

Op = Literal["add", "edit", "delete"]

PATCH_FORMAT = (
    "Answer in exactly four lines. OP is add, edit or delete; ID is the principle id to edit or "
    "delete, or NEW for add; TEXT is empty for delete. Example:\n"
    "OP: add\n"
    "ID: NEW\n"
    "TEXT: <your new principle, one sentence>\n"
    "RATIONALE: <which weakness it fixes, one sentence>"
)
# Phrases of the instructions themselves: a small model often copies them instead of answering.
_ECHOES = (
    "<your new principle",
    "your new principle, one sentence",
    "which weakness it fixes",
    "add, edit or delete",
    "the principle id to edit",
    "the new principle in one sentence",
)
# The same format as a regex, for backends that honour `SamplingParams.constraint`.
PATCH_REGEX = r" ?(add|edit|delete)\nID: (P[0-9]{1,3}|NEW)\nTEXT: [^\n]{0,300}\nRATIONALE: [^\n]{1,200}\n?"


def patch_constraint() -> Constraint:
    """Constraint on the completion that follows the assistant prefix "OP:"."""
    return Constraint.regex(PATCH_REGEX)


class Patch(BaseModel):
    op: Op
    id: str | None = None
    text: str = ""
    rationale: str = ""


class ParsedPatch(BaseModel):
    """A proposal as recorded: the raw text always; `patch` only when it parsed and is applicable."""

    raw: str
    patch: Patch | None = None
    error: str | None = None


_FIELD = re.compile(
    r"^\s*\**\s*(OP|ID|TEXT|RATIONALE)\s*\**\s*[:=]\s*(.*?)\s*$", re.IGNORECASE | re.MULTILINE
)


_OP_LINE = re.compile(r"^\s*\**\s*OP\s*\**\s*[:=]", re.IGNORECASE)
_OP_WORD = re.compile(r"\b(add|edit|delete)\b", re.IGNORECASE)
# A principle header ("P9. ...") or a numbered list inside one TEXT: several rules in one principle,
# and in the rendered constitution a header reads as a principle of its own.
_SMUGGLED = re.compile(r"(?:^|[\s.;:,])P\d+\s*[.)]\s+\S|^\(?1[.)]\s.*\s\(?2[.)]\s", re.IGNORECASE)


class _Conflict(ValueError):
    """One field given twice with different values inside one proposal."""


def _blocks(raw: str) -> list[list[tuple[str, str]]]:
    """The (field, value) lines of `raw`, cut into blocks at every OP line. Lines that are no field
    are kept as ("", line) so a TEXT continued on the next line can be told apart."""
    blocks: list[list[tuple[str, str]]] = [[]]
    for line in raw.split("\n"):
        m = _FIELD.match(line)
        if m is None:
            if line.strip():
                blocks[-1].append(("", line.strip()))
            continue
        key = m.group(1).lower()
        if key == "op" and any(k == "op" for k, _ in blocks[-1]):
            blocks.append([])
        blocks[-1].append((key, m.group(2).strip().strip('"*').strip()))
    return blocks


def _fields_from_lines(raw: str) -> dict[str, str]:
    """The fields of ONE proposal: the first block whose OP names one operation. Fields never mix
    across blocks (a repeated block's OP with the first block's ID turned an edit into a delete);
    a field given twice with different values, or a TEXT that runs on over several lines before
    the next field, makes the proposal ambiguous (`_Conflict`)."""
    blocks = _blocks(raw)
    chosen = next(
        (b for b in blocks if any(k == "op" and len(set(_OP_WORD.findall(v.lower()))) == 1 for k, v in b)),
        blocks[0],
    )
    out: dict[str, str] = {}
    last = ""
    continued = False
    for key, value in chosen:
        if not key:
            continued = continued or last == "text"
            continue
        if continued:
            raise _Conflict("TEXT runs over several lines; a principle is one line")
        if key in out and out[key] != value:
            raise _Conflict(f"{key.upper()} given twice with different values")
        out.setdefault(key, value)
        last = key
    return out


def _norm(text: str) -> str:
    """Text compared for duplicates: case, spacing and closing punctuation do not make a new rule."""
    return " ".join(text.casefold().split()).strip(" .!;:\"'*")


def _fields_from_json(raw: str) -> dict[str, str] | None:
    start, end = raw.find("{"), raw.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        obj = json.loads(raw[start : end + 1])
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    return {k.lower(): str(v) for k, v in obj.items() if isinstance(k, str) and v is not None}


def parse_patch(raw: str, cons: Constitution, prefix: str = "OP:") -> ParsedPatch:
    """Parse a proposal (the completion; `prefix` is what the model was started with)."""
    fields = _fields_from_json(raw) if raw.lstrip().startswith("{") else None
    if fields is None:
        # The model continued after the forced prefix unless it wrote its own OP line first.
        text = raw if not prefix or _OP_LINE.match(raw) else prefix + raw
        try:
            fields = _fields_from_lines(text)
        except _Conflict as exc:
            return ParsedPatch(raw=raw, error=f"ambiguous proposal: {exc}")
    ops = set(re.findall(r"\b(add|edit|delete)\b", (fields.get("op") or "").lower()))
    if len(ops) != 1:
        return ParsedPatch(raw=raw, error=f"no single valid OP (add/edit/delete): got {fields.get('op')!r}")
    op = ops.pop()
    pid = (fields.get("id") or "").strip().upper().strip(".,;") or None
    body = " ".join((fields.get("text") or "").split())
    rationale = " ".join((fields.get("rationale") or "").split())[:300]
    if op in ("edit", "delete"):
        if not pid or cons.get(pid) is None:
            return ParsedPatch(raw=raw, error=f"{op} needs an existing principle id, got {pid!r}")
    placeholder = body.startswith("<") and body.endswith(">")
    if placeholder or any(e in f"{body} {rationale}".lower() for e in _ECHOES):
        return ParsedPatch(raw=raw, error="the proposal copies the format instructions")
    if op in ("add", "edit"):
        if len(body) < 10:
            return ParsedPatch(raw=raw, error=f"{op} needs a principle TEXT of at least 10 characters")
        if len(body) > MAX_PRINCIPLE_CHARS:
            return ParsedPatch(raw=raw, error=f"principle TEXT longer than {MAX_PRINCIPLE_CHARS} characters")
    if op in ("add", "edit") and _SMUGGLED.search(body):
        return ParsedPatch(
            raw=raw, error="TEXT holds several principles (a 'P<n>.' header or a numbered list)"
        )
    target = cons.get(pid or "") if op != "add" else None
    if op == "edit" and target is not None and _norm(target.text) == _norm(body):
        return ParsedPatch(raw=raw, error="edit leaves the principle unchanged")
    if op == "delete" and body and (target is None or _norm(target.text) != _norm(body)):
        return ParsedPatch(
            raw=raw, error="delete with a new TEXT is ambiguous (an edit?); TEXT is empty for delete"
        )
    if op in ("add", "edit") and any(p.id != pid and _norm(p.text) == _norm(body) for p in cons.principles):
        return ParsedPatch(raw=raw, error=f"{op} duplicates an existing principle")
    return ParsedPatch(
        raw=raw, patch=Patch(op=op, id=pid if op != "add" else None, text=body, rationale=rationale)
    )  # type: ignore[arg-type]


def apply_patch(cons: Constitution, patch: Patch, provenance: Provenance) -> Constitution:
    """A new version with the patch applied (the input is not modified)."""
    principles = [p.model_copy(deep=True) for p in cons.principles]
    if patch.op == "add":
        principles.append(
            Principle(id=cons.next_id(), text=patch.text, rationale=patch.rationale, provenance=provenance)
        )
    elif patch.op == "edit":
        principles = [
            p.model_copy(update={"text": patch.text, "rationale": patch.rationale, "provenance": provenance})
            if p.id == patch.id
            else p
            for p in principles
        ]
    else:
        principles = [p for p in principles if p.id != patch.id]
    return cons.model_copy(
        update={"principles": principles, "version": cons.version + 1, "parent": cons.version}
    )


def describe(patch: Patch | None) -> str:
    if patch is None:
        return "(no patch)"
    if patch.op == "delete":
        return f"delete {patch.id}"
    return f"{patch.op} {patch.id or 'NEW'}: {patch.text}"
