"""Shared fixtures for env tests: a tiny random llama served through the ordinary hf backend."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    from selflab.models.testing import tiny_llama

    folder = tiny_llama(tmp_path_factory.mktemp("envs-tiny"))
    return f"hf:{folder}"
