"""Training memory levers change memory only: small log-prob tiles and activation checkpointing give
the same numbers as TRL's defaults."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selflab.models.testing import tiny_llama
from selflab.training import TrainConfig, train
from selflab.training.memory import (
    activation_bytes_per_token,
    batch_tokens,
    cpu_fused_head,
    wants_checkpointing,
)

ROWS = [
    {"prompt": "Say hi", "chosen": "hi", "rejected": "go away"},
    {"prompt": "Say bye", "chosen": "bye", "rejected": "no"},
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("tiny") / "model")


def test_small_tiles_give_the_full_logits_answer() -> None:
    """Log-probs, entropy and the hidden-state gradient from many small tiles equal log_softmax over
    the full logits (the fold is an online log-sum-exp), and the TRL globals come back afterwards."""
    import trl.kernels.chunked_logprob as kernel
    import trl.trainer.utils as trl_utils
    from trl.kernels import ChunkedLogProbFunction

    before = kernel.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(37, 16, generator=g, requires_grad=True)
    weight = torch.randn(1000, 16, generator=g)
    targets = torch.randint(0, 1000, (37,), generator=g)
    outputs = ("log_probs", "entropy")

    logp_full = torch.log_softmax(hidden @ weight.T, dim=-1)
    want = logp_full.gather(1, targets[:, None]).squeeze(1)
    want_entropy = -(logp_full.exp() * logp_full).sum(-1)
    (want_grad,) = torch.autograd.grad(want.sum(), hidden)

    with cpu_fused_head(True, tokens=8, vocab=300):
        assert kernel.TOKEN_CHUNK_SIZE == 8 and trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE == 300
        got, entropy, *_ = ChunkedLogProbFunction.apply(
            hidden, weight, None, targets, 1.0, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs
        )
        (got_grad,) = torch.autograd.grad(got.sum(), hidden)
    assert (kernel.TOKEN_CHUNK_SIZE, trl_utils._CHUNKED_LOGPROB_CHUNK_SIZE) == before
    torch.testing.assert_close(got, want)
    torch.testing.assert_close(entropy, want_entropy)
    torch.testing.assert_close(got_grad, want_grad)


def test_on_cpu_only_labelled_positions_are_projected() -> None:
    """TRL's fused head projects only label positions where its device test says Triton; on CPU
    the block says so, and the test comes back afterwards."""
    import trl.trainer.utils as trl_utils

    before = trl_utils._use_triton
    assert not before(torch.device("cpu"))
    with cpu_fused_head(True):
        assert trl_utils._use_triton(torch.device("cpu"))
    assert trl_utils._use_triton is before


def test_labelled_positions_only_give_the_same_loss(tiny: Path) -> None:
    """The fused head's loss, gradient included, is the same whether every position is projected
    (TRL's CPU default) or only the labelled ones (inside `cpu_fused_head`)."""
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    model = AutoModelForCausalLM.from_pretrained(tiny)
    add_fused_lm_head(model)
    ids = torch.randint(0, model.config.vocab_size, (2, 12), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[0, :7] = labels[1, :4] = labels[1, 10:] = -100  # prompts and padding

    def loss_and_grad() -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        loss = model(input_ids=ids, labels=labels, fused_lm_head=True).loss
        loss.backward()
        return loss.detach(), model.model.layers[0].mlp.down_proj.weight.grad.clone()

    everywhere = loss_and_grad()
    with cpu_fused_head(True):
        labelled = loss_and_grad()
    torch.testing.assert_close(labelled[0], everywhere[0])
    torch.testing.assert_close(labelled[1], everywhere[1])


def test_tiles_are_left_alone_off_cpu() -> None:
    import trl.kernels.chunked_logprob as kernel

    before = kernel.TOKEN_CHUNK_SIZE
    with cpu_fused_head(False, tokens=8, vocab=300):
        assert kernel.TOKEN_CHUNK_SIZE == before


def test_auto_checkpointing_follows_the_activation_budget(tiny: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    tokenizer, config = AutoTokenizer.from_pretrained(tiny), AutoConfig.from_pretrained(tiny)
    rows = [
        {
            "prompt": [{"role": "user", "content": "word " * 200}],
            "chosen": [{"role": "assistant", "content": "yes " * 100}],
            "rejected": [{"role": "assistant", "content": "no"}],
        }
    ] * 4
    common = dict(batch_size=4, max_length=512, rows_per_example=2)
    assert wants_checkpointing("auto", rows, tokenizer, config, budget_mb=0, **common)
    assert not wants_checkpointing("auto", rows, tokenizer, config, budget_mb=10_000, **common)
    assert wants_checkpointing(True, rows, tokenizer, config, budget_mb=10_000, **common)
    assert not wants_checkpointing(False, rows, tokenizer, config, budget_mb=0, **common)
    # the estimate: the longest example padded across the batch, chosen and rejected side by side
    assert batch_tokens([100, 300, 50], batch_size=2, max_length=256, rows_per_example=2) == 256 * 2 * 2
    assert activation_bytes_per_token(576, 1536, 30) == 30 * 4 * (12 * 576 + 4 * 1536)


def test_checkpointed_dpo_trains_the_same_as_plain(tiny: Path, tmp_path: Path) -> None:
    """Activation checkpointing recomputes instead of storing: same losses, same adapter."""
    from safetensors.torch import load_file

    cfg = TrainConfig(max_steps=2, learning_rate=1e-2, batch_size=2)
    plain = train(
        "dpo",
        f"hf:{tiny}",
        ROWS,
        tmp_path / "plain",
        cfg.model_copy(update={"gradient_checkpointing": False}),
    )
    auto = train(
        "dpo", f"hf:{tiny}", ROWS, tmp_path / "gc", cfg.model_copy(update={"activation_budget_mb": 0})
    )
    assert plain.extra["gradient_checkpointing"] is False and auto.extra["gradient_checkpointing"] is True
    assert auto.losses == pytest.approx(plain.losses, rel=1e-4, abs=1e-6)
    a = load_file(str(tmp_path / "plain" / "adapter_model.safetensors"))
    b = load_file(str(tmp_path / "gc" / "adapter_model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_default_budget_spares_the_main_jobs_sft_and_checkpoints_the_dpo_benchmark() -> None:
    """The default budget's two anchors on SmolLM2-135M's shape (576 hidden, 1536 MLP, 30 layers):
    the main job's SFT batches (8 examples of ~136 tokens) train without recomputation, DPO at the
    training benchmark's shape (4 pairs of ~310 tokens, chosen and rejected) stays checkpointed."""
    budget = TrainConfig().activation_budget_mb * (1 << 20)
    per_token = activation_bytes_per_token(576, 1536, 30)
    assert batch_tokens([136] * 29, 8, 512, 1) * per_token < budget
    assert batch_tokens([310] * 16, 4, 1024, 2) * per_token > budget
