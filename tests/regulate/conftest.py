"""Regulate tests replace model loading with scripted models where a test says so."""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def scripted_models(monkeypatch: pytest.MonkeyPatch) -> Callable[[object], None]:
    """`scripted_models(model)`: every `load_model(spec)` returns `model`."""
    import selflab.models as models

    def install(model: object) -> None:
        monkeypatch.setattr(models, "load_model", lambda spec: model)
        monkeypatch.setattr(models, "clear_cache", lambda: None)

    return install
