"""The CPU LM head (train/lm_head.py) gives TRL's fused head's log-probs, metrics and gradients,
and swaps TRL's private switches only while it is open."""

import pytest
import torch

from train.lm_head import cpu_lm_head, plain_log_probs

OUTPUTS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1")


def _trl(*args):
    from trl.kernels.chunked_logprob import ChunkedLogProbFunction

    return ChunkedLogProbFunction.apply(*args)


@pytest.mark.parametrize(
    "temperature, softcap, scale, with_bias", [(1.0, None, 1.0, False), (0.7, 30.0, 0.5, True)]
)
def test_plain_ops_match_trls_chunked_kernel(temperature, softcap, scale, with_bias):
    torch.manual_seed(0)
    tokens, hidden_size, vocab = 37, 16, 300
    weight = torch.randn(vocab, hidden_size)
    bias = torch.randn(vocab) if with_bias else None
    targets = torch.randint(0, vocab, (tokens,))
    targets[0] = 5  # a tie with an earlier token is not top-1 in either
    results = []
    for function in (_trl, plain_log_probs):
        hidden = torch.randn(tokens, hidden_size, generator=torch.Generator().manual_seed(1))
        hidden.requires_grad_()
        # chunk 128: TRL folds three vocabulary tiles, so its online logsumexp is exercised
        out = function(hidden, weight, bias, targets, temperature, 128, softcap, scale, OUTPUTS)
        (out[0] * torch.linspace(-1, 2, tokens)).sum().backward()
        results.append((out, hidden.grad))
    (trl_out, trl_grad), (plain_out, plain_grad) = results
    for name, a, b in zip(OUTPUTS, trl_out, plain_out, strict=True):
        if name == "is_top1":
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4, msg=name)
    torch.testing.assert_close(plain_grad, trl_grad, rtol=1e-4, atol=1e-5)
    assert plain_out[1] is not None and not plain_out[1].requires_grad  # a logged metric only


def test_only_the_outputs_asked_for_are_computed():
    hidden, weight = torch.randn(4, 8), torch.randn(20, 8)
    out = plain_log_probs(hidden, weight, None, torch.tensor([1, 2, 3, 4]), 1.0, 64)
    assert out[0].shape == (4,) and all(x is None for x in out[1:])
    assert torch.all(out[0] <= 0)


def test_the_fused_head_scores_labelled_tokens_in_plain_ops_while_open(tiny_llama):
    """Pins TRL's private switches (`_use_triton`, `_ChunkedLogProbFunction` in
    `trl.trainer.utils`): a TRL without them fails here. A whole model, padding and a prompt
    included: same log-probs and metrics at every labelled position, same gradients."""
    import trl.trainer.utils as fused
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from train.lora import load_tokenizer

    assert callable(fused._use_triton) and not fused._use_triton(torch.device("cpu"))
    kernel = fused._ChunkedLogProbFunction
    tokenizer = load_tokenizer(str(tiny_llama))
    tokenizer.padding_side = "right"
    texts = ["A long answer " * 6, "Short.", "A middle sized answer " * 2, "No."]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    labels[:, :2] = -100  # a prompt
    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32)
    outputs = ("log_probs", "entropy", "mean_logits", "is_top1")
    add_fused_lm_head(model, outputs=outputs)
    results = []
    for patched in (False, True):
        model.zero_grad()
        if patched:
            with cpu_lm_head():
                assert fused._use_triton(torch.device("cpu"))
                assert fused._ChunkedLogProbFunction is not kernel
                out = model(**batch, labels=labels, fused_lm_head=True)
        else:
            out = model(**batch, labels=labels, fused_lm_head=True)
        out.loss.backward()
        grad = model.model.layers[0].mlp.down_proj.weight.grad.clone()
        results.append((out, grad))
    assert not fused._use_triton(torch.device("cpu"))  # restored
    assert fused._ChunkedLogProbFunction is kernel
    (trl_out, trl_grad), (plain_out, plain_grad) = results
    mask = labels[:, 1:] != -100
    for name in outputs:
        a, b = getattr(trl_out, name)[mask], getattr(plain_out, name)[mask]
        if name == "is_top1":
            assert torch.equal(a, b)
        else:
            torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4, msg=name)
    torch.testing.assert_close(plain_grad, trl_grad, rtol=1e-3, atol=1e-6)
