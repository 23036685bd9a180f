"""Shared fixtures: one tiny random llama (real tokenizer) per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory):
    from selflab.models.testing import tiny_llama

    return tiny_llama(tmp_path_factory.mktemp("tiny-llama"), num_layers=3, hidden_size=64)


@pytest.fixture(scope="session")
def tiny_hf(tiny_folder):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_folder, dtype=torch.float32)
    model.eval()
    return model, AutoTokenizer.from_pretrained(tiny_folder)
