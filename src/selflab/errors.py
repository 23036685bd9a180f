"""User-facing errors: each names the problem and the fix, and the CLI prints them without a traceback."""

from __future__ import annotations


class SelflabError(Exception):
    """An error caused by input or environment, not by a bug. `fix` tells the user what to do."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\n  fix: {fix}" if fix else problem)


class ModelSpecError(SelflabError):
    """The model spec string does not name a usable model."""


class BackendError(SelflabError):
    """A model backend failed after its retries (server down, repeated 5xx)."""


class ConfigError(SelflabError):
    """A config file or flag is malformed or out of range."""
