"""Free-text turns for speech games: the core's action extraction keeps one `ACTION:` line (or the
last line), which would cut a multi-line speech. When a reply has no `ACTION:` marker at all, these
games take the whole reply as the message instead."""

from __future__ import annotations

import re

from selflab.envs.core import StepResult, extract_action

_MARKER_RE = re.compile(r"\baction\s*[*_`]*\s*[:=]", re.IGNORECASE)
_PREFIX_RE = re.compile(r"^[\W_]*action[\W_]*[:=\-]\s*", re.IGNORECASE)


class FreeTextMixin:
    """Mix into a `TextEnv`; call `self.message_text(action)` inside `apply`."""

    max_message_chars: int = 800
    _raw_reply: str | None = None

    def step(self, action: str) -> StepResult:  # type: ignore[override]
        self._raw_reply = action if isinstance(action, str) else str(action)
        try:
            return super().step(action)  # type: ignore[misc]
        finally:
            self._raw_reply = None

    def message_text(self, action: str) -> str:
        """The message: the whole reply when it has no ACTION marker (and `action` came from it),
        else the extracted action; whitespace collapsed, length capped."""
        raw = self._raw_reply
        text = action
        if raw is not None and not _MARKER_RE.search(raw) and action == extract_action(raw):
            text = raw
        text = _PREFIX_RE.sub("", " ".join(text.split()))
        return text[: self.max_message_chars].strip()
