"""The lean decode path (the default `dense` format, and `hf:PATH?quant=fp16|int8-dynamic|int8|int4`):
the same step as transformers' forward (rms-norm, rotary, grouped-query attention over the slot cache, per-row lengths,
row groups), with low-bit weights; the weight-only formats equal the model's own quant wrappers;
refused with a clear error where it cannot serve the model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, DynamicCache, LlamaConfig, LlamaForCausalLM

from selflab.errors import ModelSpecError
from selflab.models.engine_cache import cache_kwargs
from selflab.models.engine_decode import (
    PACKED_MAX_ROWS,
    FastDecoder,
    decode_plan,
    unsupported_reason,
    weights_version,
)
from selflab.models.engine_formats import (
    DECODE_FORMATS,
    DENSE,
    PackedLinear,
    int8_dynamic_available,
    mkl_packing_available,
    rms_norm_of,
)
from selflab.models.engine_layers import rms_norm, run_layers
from selflab.models.engine_slots import SlotCache
from selflab.models.hf import HFModel
from selflab.models.lowbit import int4_available, int8_available
from selflab.models.quant import apply_quant, quantize_int4, quantize_int8
from selflab.models.testing import lively_tiny_llama
from selflab.models.types import GenerationRequest

needs_dyn8 = pytest.mark.skipif(not int8_dynamic_available(), reason="no fbgemm/x86 quantized engine")
# Every decode format: the model's own weights (quant=none), the two that exist only here, and the
# weight-only formats of quant=int8 / int4.
FORMATS = [DENSE, *DECODE_FORMATS, "int8", "int4-g32"]
TOLERANCE = {DENSE: 1e-6, "int8-dynamic": 0.08}


def _skip_unavailable(fmt: str) -> None:
    if fmt == "int8-dynamic" and not int8_dynamic_available():
        pytest.skip("no fbgemm")
    if fmt in ("int8", "int4-g32") and not (int8_available() and int4_available()):
        pytest.skip("this torch lacks the weight-only int8/int4 CPU kernels")


def _reference(model: LlamaForCausalLM, fmt: str) -> LlamaForCausalLM:
    """The model whose forward the decoder must equal: the dense one, or for a weight-only format
    the model with its own quant wrappers (the same kernels, unfused)."""
    if fmt == "int8":
        quantize_int8(model)
    elif fmt == "int4-g32":
        quantize_int4(model, 32)
    return model


def _rel(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm())


def _llama(bias: bool = False) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        attention_bias=bias,
        tie_word_embeddings=True,
        rope_theta=10000.0,
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # larger residual stream than the init, like a trained model
        model.model.embed_tokens.weight.mul_(20)
    return model


def _prefill(model: nn.Module, prompts: list[list[int]]) -> tuple[SlotCache, list[DynamicCache]]:
    """A slot cache holding each prompt's keys/values, and transformers' own cache per prompt."""
    cache = SlotCache(model.config.num_hidden_layers, torch.device("cpu"))
    own, rows = [], []
    for ids in prompts:
        past = DynamicCache(config=model.config)
        model(input_ids=torch.tensor([ids]), **cache_kwargs(model, past), use_cache=True)
        kv = torch.stack([torch.stack([layer.keys[0], layer.values[0]]) for layer in past.layers])
        rows.append([kv])
        own.append(past)
    cache.add(rows, max_rows=8)
    return cache, own


@pytest.mark.parametrize("fmt", ["fp16", "int4-g32"])
def test_a_bf16_model_keeps_its_dtype_through_low_bit_products(fmt: str) -> None:
    """A bf16 model under a decode format whose products are fp16 (or bf16): the residual stream
    stays bf16 (bf16 + fp16 would promote it to fp32), and the step stays close to the model's."""
    _skip_unavailable(fmt)
    model = _llama().to(torch.bfloat16)
    decoder = FastDecoder(model, fmt, max_rows=2)
    prompt, token = [5, 6, 7, 8], torch.tensor([9])
    with torch.inference_mode():
        cache, own = _prefill(model, [prompt])
        cache.ensure_columns()
        got = decoder.step(token, torch.tensor([len(prompt)]), cache, [(0, 1, len(prompt) + 1)])
        want = model(input_ids=token.view(1, 1), **cache_kwargs(model, own[0]), use_cache=True).logits[0, -1]
    assert got.dtype == torch.bfloat16
    assert _rel(got[0], want) < 0.2


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("fmt", [*FORMATS, "dense-unpacked", "dense-own"])
def test_step_matches_transformers_with_rows_of_different_lengths(fmt: str, bias: bool) -> None:
    _skip_unavailable(fmt)
    # dense-unpacked: fused copies without MKL packing; dense-own: the model's own weights, as for a
    # model whose copies would exceed the limit.
    limit = 0 if fmt == "dense-own" else 1024
    pack = fmt == DENSE
    fmt = fmt.removesuffix("-own").removesuffix("-unpacked")
    decoder = FastDecoder(
        _llama(bias), fmt, max_rows=1 if fmt == "int8-dynamic" else 4, copy_limit_mb=limit, pack=pack
    )
    assert decoder.copies == (limit > 0 or fmt != DENSE)
    assert decoder.pack == (pack and limit > 0 and mkl_packing_available())
    model = _reference(_llama(bias), fmt)
    lengths = [9, 4, 7, 2][: decoder.max_rows]
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, 300, (n,), generator=g).tolist() for n in lengths]
    tokens = torch.randint(0, 300, (len(prompts),), generator=g)
    with torch.inference_mode():
        cache, own = _prefill(model, prompts)
        positions = torch.tensor(lengths)
        span = max(lengths) + 1
        # Two row groups (each over its own longest row) where there are rows enough.
        groups = [(0, 2, max(lengths[:2]) + 1), (2, 4, max(lengths[2:]) + 1)] if len(lengths) == 4 else [(0, len(lengths), span)]  # fmt: skip
        cache.ensure_columns()
        got = decoder.step(tokens, positions, cache, groups)
        for r, past in enumerate(own):
            want = model(input_ids=tokens[r].view(1, 1), **cache_kwargs(model, past), use_cache=True).logits[
                0, -1
            ]
            tolerance = TOLERANCE.get(fmt, 0.01)
            assert _rel(got[r], want) < tolerance, (r, _rel(got[r], want))
            assert int(got[r].argmax()) == int(want.argmax())
            # The new key/value went to the row's own column, as transformers computed them.
            for layer in range(model.config.num_hidden_layers):
                new_k = past.layers[layer].keys[0, :, -1]
                assert _rel(cache.data[layer, 0, r, :, lengths[r]], new_k) < tolerance
            # Columns beyond the row's new token are untouched (still zeros).
            assert not cache.data[:, :, r, :, lengths[r] + 1 :].any()


@pytest.mark.parametrize("fmt", [DENSE, "dense-unpacked"])
def test_extend_matches_transformers_for_several_tokens_per_row(fmt: str) -> None:
    """`extend` (a speculative draft's check): n tokens per row, each attending causally over its
    row; logits and keys/values as transformers computes them for the same n tokens."""
    pack = fmt == DENSE
    decoder = FastDecoder(_llama(), DENSE, pack=pack)
    model = _llama()
    lengths, n = [9, 4, 6], 5
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(0, 300, (m,), generator=g).tolist() for m in lengths]
    tokens = torch.randint(0, 300, (len(prompts), n), generator=g)
    with torch.inference_mode():
        cache, own = _prefill(model, prompts)
        cache.ensure_columns(n)
        got = decoder.extend(tokens, torch.tensor(lengths), cache, [(0, 3, max(lengths) + n)])
        assert got.shape == (3, n, 300)
        for r, past in enumerate(own):
            want = model(input_ids=tokens[r : r + 1], **cache_kwargs(model, past), use_cache=True).logits[0]
            assert _rel(got[r], want) < 1e-5, (r, _rel(got[r], want))
            for layer in range(model.config.num_hidden_layers):
                keys = cache.data[layer, 0, r, :, lengths[r] : lengths[r] + n]
                assert _rel(keys, past.layers[layer].keys[0, :, -n:]) < 1e-5
            assert not cache.data[:, :, r, :, lengths[r] + n :].any()


def test_rms_norm_equals_the_models_norm() -> None:
    model = _llama()
    norm = model.model.layers[0].input_layernorm
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        x = torch.randn(3, 64) * 5
        assert torch.allclose(rms_norm(x, rms_norm_of(norm)), norm(x), rtol=1e-5, atol=1e-5)
        assert torch.equal(rms_norm(x, rms_norm_of(norm, exact=True)), norm(x))  # transformers' own ops
        zeros = torch.zeros(1, 64)
        assert torch.isfinite(rms_norm(zeros, rms_norm_of(norm))).all()  # an all-zero row stays finite


@needs_dyn8
def test_packed_linear_fuses_projections_with_and_without_bias() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(32, 16), nn.Linear(32, 8, bias=False)
    x = torch.randn(1, 32)
    with torch.inference_mode():
        want = torch.cat([a(x), b(x)], dim=-1)
        for fmt in FORMATS:
            got = PackedLinear([a, b], fmt)(x)
            assert got.shape == (1, 24) and got.dtype == x.dtype
            assert _rel(got, want) < {DENSE: 1e-6, "fp16": 0.005, "int4-g32": 0.15}.get(fmt, 0.03), fmt
        unfused = PackedLinear([a, b], DENSE, copies=False)
        assert unfused.spec.kind == "pieces" and unfused.spec.weights[0].data_ptr() == a.weight.data_ptr()
        assert torch.allclose(unfused(x), want, atol=1e-6)
        # A width no int4 group size divides falls back to int8 for that projection.
        odd = PackedLinear([nn.Linear(40, 8)], "int4-g32")
        assert odd.fmt == "int8" and odd(torch.randn(1, 40)).shape == (1, 8)


@pytest.mark.skipif(not mkl_packing_available(), reason="this torch has no MKL")
def test_mkl_packed_weights_give_the_same_numbers_at_every_row_count() -> None:
    """One MKL pack (made for 16 rows) serves every row count the decoder passes."""
    torch.manual_seed(0)
    a, b = nn.Linear(64, 48), nn.Linear(64, 16, bias=False)
    packed = PackedLinear([a, b], DENSE, pack=True)
    single = PackedLinear([b], DENSE, pack=True)
    assert packed.spec.extra is not None and single.spec.extra is not None
    assert single.spec.weights[0].data_ptr() == b.weight.data_ptr()  # a single one packs its own weight
    with torch.inference_mode():
        for rows in (1, 2, 3, 4, 7, 16, 32):
            x = torch.randn(rows, 64)
            want = torch.cat([a(x), b(x)], dim=-1)
            assert torch.allclose(packed(x), want, rtol=1e-5, atol=1e-5), rows
            assert torch.allclose(single(x), b(x), rtol=1e-5, atol=1e-5), rows


def test_models_it_cannot_serve_are_refused_with_the_reason_and_the_fix() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100, bos_token_id=0, eos_token_id=0)
    )
    assert "gpt2" in (unsupported_reason(gpt2) or "")
    with pytest.raises(ModelSpecError, match="quant=fp16") as info:
        apply_quant(gpt2, "fp16", torch.device("cpu"))
    assert "quant=int8" in str(info.value)  # the fix names a path that serves any architecture
    assert decode_plan(gpt2, "int4") is None  # quant=int4 still serves it, through its layer wrappers
    adapted = _llama()
    adapted.model.layers[1].self_attn.q_proj = nn.Sequential(adapted.model.layers[1].self_attn.q_proj)
    assert "LoRA" in (unsupported_reason(adapted) or "")
    with pytest.raises(ValueError, match="cannot serve"):
        FastDecoder(adapted, "fp16")
    # quant=int8 / int4 leave a llama-family model unwrapped: the lean path carries the format.
    plain = _llama()
    assert apply_quant(plain, "int4", torch.device("cpu")) == "int4"
    assert unsupported_reason(plain) is None
    assert decode_plan(plain, "int4") == ("int4-g32", 32)
    assert decode_plan(plain, "int4-g64") == ("int4-g64", 32)
    assert decode_plan(plain, "int8") == ("int8", 4)
    assert decode_plan(plain, "none") == (DENSE, None)  # the model's own numbers; rows: the decoder's
    if mkl_packing_available():
        assert FastDecoder(plain, DENSE).max_rows == PACKED_MAX_ROWS
    assert decode_plan(GPT2LMHeadModel(gpt2.config), "none") is None
    wrapped = _llama()
    quantize_int4(wrapped, 32)
    assert "quant wrapper" in (unsupported_reason(wrapped) or "")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return lively_tiny_llama(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_engine_uses_the_fast_path_for_few_rows_and_stays_reproducible(folder: Path, fmt: str) -> None:
    _skip_unavailable(fmt)
    quant = "none" if fmt == DENSE else fmt.partition("-g")[0]  # quant=int4 is int4-g32
    lm = HFModel(folder, device="cpu", quant=quant, threads=1, speculate="none")
    # The model to agree with: dense, or under the same format's layer wrappers (no lean path).
    dense = HFModel(folder, device="cpu", threads=1, lean_decode=False)
    assert dense.engine.decoder is None
    _reference(dense.model, fmt)
    try:
        greedy = GenerationRequest.chat("Tell me a story.", max_new_tokens=24)
        sampled = [GenerationRequest.chat(f"Story {i}.", max_new_tokens=16, temperature=0.9, seed=i) for i in range(6)]  # fmt: skip
        first = lm.generate([greedy])[0]
        assert first.error is None and first.completion_tokens == 24
        assert lm.engine.decoder is not None and lm.engine.decoder.fmt == fmt
        assert unsupported_reason(lm.model) is None  # no layer wrappers
        assert lm.engine.stats.fast_decode_steps == first.completion_tokens - 1  # the prefill gives the first
        # A tiny random model amplifies rounding, so only the start is compared with the dense model
        # (all of it for the dense format: the same numbers up to the order of additions).
        want = dense.generate([greedy])[0]
        assert first.text[: None if fmt == DENSE else 8] == want.text[: None if fmt == DENSE else 8]
        # More rows than the fast path takes: the model's forward serves them, until few are left
        # (the dense format serves them all).
        batch = lm.generate(sampled)
        again = lm.generate(sampled)
        assert all(c.error is None for c in batch)
        # Same seeds, same text, whatever the prefix cache held: prefills always run the dense forward.
        assert [c.text for c in batch] == [c.text for c in again]
        assert lm.generate([greedy])[0].text == first.text
    finally:
        lm.close()
        dense.close()


@pytest.mark.integration
@needs_dyn8
def test_embedded_model_step_is_close_to_the_dense_step() -> None:
    """On the real model: fp16 weights are within 1% of the dense logits; int8-dynamic quantises each
    activation vector with one scale, and SmolLM2's outlier channels cost it 5-25% (measured), yet
    the next token (argmax) is the dense model's on these chat prompts. The int4 step equals the
    step of the model under quant=int4's own layer wrappers (same weights and kernel, fused)."""
    import copy

    from transformers import AutoTokenizer

    from selflab.models import embedded

    model = AutoModelForCausalLM.from_pretrained(embedded.prepare(), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(embedded.prepare())
    cases = {fmt: (FastDecoder(model, fmt), model, 0.01 if fmt == "fp16" else 0.3) for fmt in DECODE_FORMATS}
    cases[DENSE] = (FastDecoder(model, DENSE), model, 1e-6)
    if int4_available() and int8_available():
        cases["int4-g32"] = (
            FastDecoder(model, "int4-g32"),
            _reference(copy.deepcopy(model), "int4-g32"),
            0.02,
        )
    questions = ["What is the capital of France?", "Give three facts about prime numbers.", "Explain rain."]
    with torch.inference_mode():
        for question in questions:
            chat = [{"role": "user", "content": question}]
            text = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
            ids = tokenizer(text + "The", add_special_tokens=False)["input_ids"]
            prompt, token = ids[:-1], torch.tensor(ids[-1:])
            for fmt, (decoder, reference, tolerance) in cases.items():
                cache, own = _prefill(reference, [prompt])
                cache.ensure_columns()
                got = decoder.step(token, torch.tensor([len(prompt)]), cache, [(0, 1, len(prompt) + 1)])
                want = reference(input_ids=token.view(1, 1), **cache_kwargs(model, own[0]), use_cache=True)
                want = want.logits[0, -1]
                assert _rel(got[0], want) < tolerance, (fmt, question, _rel(got[0], want))
                assert int(got[0].argmax()) == int(want.argmax()), (fmt, question)


def test_copies_follow_weights_changed_in_place() -> None:
    """Training or loading weights into the model after the decoder was built: `refresh()` remakes the
    fused copies and norms, and the engine's `weights_version` sees every such change."""
    model = _llama()
    decoder = FastDecoder(model, DENSE, max_rows=4)
    prompt, token = [5, 6, 7], torch.tensor([8])

    def step_and_want() -> tuple[torch.Tensor, torch.Tensor]:
        cache, own = _prefill(model, [prompt])
        cache.ensure_columns()
        assert decoder.refresh()
        got = decoder.step(token, torch.tensor([len(prompt)]), cache, [(0, 1, len(prompt) + 1)])[0]
        want = model(input_ids=token.view(1, 1), **cache_kwargs(model, own[0]), use_cache=True)
        return got, want.logits[0, -1]

    with torch.inference_mode():
        before, _ = step_and_want()
    seen = weights_version(model)
    with torch.no_grad():  # as an optimizer step does: in place
        model.model.layers[1].self_attn.k_proj.weight.mul_(3.0)
        model.model.layers[2].post_attention_layernorm.weight.add_(0.5)
    with torch.inference_mode():
        got, want = step_and_want()
    assert _rel(got, before) > 1e-3  # the change matters ...
    assert _rel(got, want) < 1e-5  # ... and the decoder has it
    assert weights_version(model) != seen
    # Swapping a tensor in (load_state_dict(assign=True), `.data =`) is seen too.
    seen = weights_version(model)
    model.model.layers[0].mlp.up_proj.weight.data = torch.randn(96, 64)
    assert weights_version(model) != seen
    with torch.inference_mode():
        got, want = step_and_want()
    assert _rel(got, want) < 1e-5
    # A projection wrapped afterwards (an adapter, a quant wrapper): the model's forward decodes.
    seen = weights_version(model)
    layer = model.model.layers[2].self_attn
    layer.v_proj = nn.Sequential(layer.v_proj, nn.Linear(32, 32))
    assert weights_version(model) != seen
    assert not decoder.refresh()


def test_lean_decode_can_be_turned_off_by_spec(folder: Path) -> None:
    from selflab.models.registry import load_model

    with pytest.raises(ModelSpecError, match="lean_decode='maybe' is not true or false"):
        load_model(f"hf:{folder}?lean_decode=maybe", cache=False)
    lm = load_model(f"hf:{folder}?lean_decode=false&threads=1", cache=False)
    try:
        assert isinstance(lm, HFModel) and lm.engine.decoder is None
        assert lm.generate([GenerationRequest.chat("Hi.", max_new_tokens=4)])[0].error is None
        assert lm.engine.stats.fast_decode_steps == 0
    finally:
        lm.close()


def test_engine_decodes_with_weights_changed_between_calls(folder: Path) -> None:
    """A loop that trains the model in place between calls: the next call computes with the new
    weights, in its few-row steps (the lean decoder's copies) and in its prompts (the prefix cache,
    which held this prompt from the first call), with no call to `clear_prefix_cache`."""
    lm = HFModel(folder, device="cpu", threads=1, speculate="none")  # every step a plain lean one
    off = HFModel(folder, device="cpu", threads=1, lean_decode=False)
    fresh = HFModel(folder, device="cpu", threads=1)

    def train(model: nn.Module) -> None:
        with torch.no_grad():
            for layer in model.model.layers:
                layer.mlp.up_proj.weight.mul_(-1.5)

    try:
        request = GenerationRequest.chat("Tell me a story about a dragon and a knight.", max_new_tokens=12)
        first = lm.generate([request])[0].text
        assert first == off.generate([request])[0].text
        assert lm.engine.prefix_cache is not None and len(lm.engine.prefix_cache) > 0
        for model in (lm.model, off.model, fresh.model):
            train(model)
        want = fresh.generate([request])[0].text  # never saw the old weights
        assert want != first
        assert lm.generate([request])[0].text == want
        assert off.generate([request])[0].text == want
        assert lm.engine.stats.fast_decode_steps == 2 * 11
    finally:
        for model in (lm, off, fresh):
            model.close()


@pytest.mark.parametrize("fmt", [*FORMATS, "dense-own"])
def test_the_compiled_step_gives_the_python_steps_numbers_bit_for_bit(fmt: str) -> None:
    """The layers run compiled by TorchScript (a silent fallback to Python would lose the speed) and
    give exactly what the same function gives run by Python: one row, several rows, and a one-row
    check of several tokens (the speculative cycle's shapes)."""
    _skip_unavailable(fmt)
    limit = 0 if fmt == "dense-own" else 1024
    fmt = fmt.removesuffix("-own")
    compiled = FastDecoder(_llama(bias=True), fmt, copy_limit_mb=limit)
    python = FastDecoder(_llama(bias=True), fmt, copy_limit_mb=limit, script=False)
    assert isinstance(getattr(compiled.run_layers, "compiled", None), torch.jit.ScriptFunction)
    assert python.run_layers is run_layers
    g = torch.Generator().manual_seed(3)
    lengths = [7, 3, 5][: min(3, compiled.max_rows)]
    prompts = [torch.randint(0, 300, (m,), generator=g).tolist() for m in lengths]
    with torch.inference_mode():
        caches = [_prefill(_llama(bias=True), prompts)[0] for _ in range(2)]
        for cache in caches:
            cache.ensure_columns(8)
        positions = torch.tensor(lengths)
        shapes = [(len(lengths), 1), (1, 1), (1, 5)]
        for rows, n in shapes:
            tokens = torch.randint(0, 300, (rows, n), generator=g)
            groups = [(0, rows, max(lengths[:rows]) + n)]
            got, want = (
                decoder.extend(tokens, positions[:rows], cache, groups)
                for decoder, cache in zip((compiled, python), caches, strict=True)
            )
            assert torch.equal(got, want), (rows, n)
            assert torch.equal(caches[0].data, caches[1].data), (rows, n)


def test_where_torchscript_cannot_compile_the_step_runs_in_python_with_a_warning(monkeypatch) -> None:
    import selflab.models.engine_layers as engine_layers

    def refuse(fn: object) -> object:
        raise RuntimeError("no TorchScript here")

    monkeypatch.setattr(engine_layers, "_RUNNER", None)
    monkeypatch.setattr(torch.jit, "script", refuse)
    with pytest.warns(UserWarning, match="no TorchScript here"):
        decoder = FastDecoder(_llama(), DENSE)
    assert decoder.run_layers is run_layers
    with torch.inference_mode():
        cache, _ = _prefill(_llama(), [[1, 2, 3]])
        cache.ensure_columns()
        assert decoder.step(torch.tensor([4]), torch.tensor([3]), cache, [(0, 1, 4)]).isfinite().all()
