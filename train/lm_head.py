"""The LM head's per-token log-probs on a CPU: TRL's fused head, without the work a CPU pays for.

TRL 1.16 computes DPO's log-probs with a chunked "fused" LM head (`trl.kernels.chunked_logprob`)
made for GPUs, where it never materialises the [tokens, vocab] logits. On a CPU it falls back to
torch ops on [tokens, 32768] tiles and pays twice:

- it scores every position, prompt and padding included, to keep tile shapes fixed for compilers
  (Neuron); in a DPO batch only the answers (~30 % of the positions) carry labels;
- each tile takes a dozen full passes in fp32 (the logged entropy, mean logit and top-1 among
  them), and the backward recomputes the tile and multiplies it with the head again in fp32.

On a CPU, `cpu_lm_head()` scores the labelled positions only (TRL's own switch, `_use_triton`,
read for that choice alone) with plain ops: the logits in one GEMM (bf16 under autocast), a
log-softmax in fp32, autograd's fused backward. Same log-probs and gradients to bf16 rounding
(tests/unit/test_lm_head.py); measured in docs/benchmarks.md ("The LM head on a CPU"): the head's
forward and backward on 1,900 answer tokens of SmolLM2 (vocab 49,152) take 0.22-0.40x of TRL's
(bench/lm_head.py), and a DPO step on loop-shaped pairs about half. The price is memory: the
[tokens, vocab] fp32 log-probs are kept for the backward (~0.4 GB for a batch of 8 pairs of
128-token answers), which a CPU's RAM holds. Other devices keep TRL's kernel. The metrics
(entropy, mean logit, top-1) carry no gradient here: DPO only logs them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def plain_log_probs(
    hidden,
    weight,
    bias,
    targets,
    temperature: float,
    chunk_size: int,
    final_logit_softcapping: float | None = None,
    logit_scale: float = 1.0,
    outputs: tuple[str, ...] = ("log_probs",),
) -> tuple[Any, Any, Any, Any, Any]:
    """`ChunkedLogProbFunction.apply`'s contract in plain ops: log-probs of `targets` under
    `hidden @ weight.T (+ bias)`, then entropy, log(sum p^2), mean logit, is-top-1 where asked."""
    import torch
    import torch.nn.functional as F

    del chunk_size  # one GEMM: a CPU has the memory for the whole [tokens, vocab]
    z = F.linear(hidden, weight, bias).float()
    if logit_scale != 1.0:
        z = z * logit_scale
    if final_logit_softcapping is not None:
        z = final_logit_softcapping * torch.tanh(z / final_logit_softcapping)
    if temperature != 1.0:
        z = z / temperature
    log_p = torch.log_softmax(z, dim=-1)
    log_probs = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = -(log_p.exp() * log_p).sum(-1) if "entropy" in outputs else None
        log_sum_sq = torch.logsumexp(2 * log_p, -1) if "log_sum_sq_probs" in outputs else None
        mean_logits = z.mean(-1) if "mean_logits" in outputs else None
        # argmax returns the first maximum: a tie with an earlier token is no top-1, as in TRL
        is_top1 = z.argmax(-1) == targets if "is_top1" in outputs else None
    return log_probs, entropy, log_sum_sq, mean_logits, is_top1


class _CpuOrTrl:
    """Stands in for TRL's `ChunkedLogProbFunction`: plain ops on a CPU, TRL's kernel elsewhere."""

    def __init__(self, trl_function) -> None:
        self.trl_function = trl_function

    def apply(self, hidden, *args: Any):
        if hidden.device.type == "cpu":
            return plain_log_probs(hidden, *args)
        return self.trl_function.apply(hidden, *args)


@contextmanager
def cpu_lm_head() -> Iterator[None]:
    """While open, TRL's fused LM head (`add_fused_lm_head`) runs as this module says on a CPU.

    Both switches are private names of `trl.trainer.utils`; tests/unit/test_lm_head.py pins them.
    A TRL without them runs as TRL does.
    """
    import trl.trainer.utils as fused

    decide = getattr(fused, "_use_triton", None)
    function = getattr(fused, "_ChunkedLogProbFunction", None)
    if decide is None or function is None:
        yield
        return
    fused._use_triton = lambda device: device.type == "cpu" or decide(device)
    fused._ChunkedLogProbFunction = _CpuOrTrl(function)
    try:
        yield
    finally:
        fused._use_triton = decide
        fused._ChunkedLogProbFunction = function
