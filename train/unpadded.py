"""The backbone's forward without the padding: rows grouped by length, each group cut to its
longest row. A DPO batch pairs long chosen and short rejected answers (or the reverse), so a
padded batch computes ~20 % of its tokens for nothing; this computes the same hidden states at
every real token without them (train/dpo.py turns it on).
"""

from __future__ import annotations

from typing import Any


def length_groups(lengths: list[int], group_cost: int = 32, max_groups: int = 4) -> list[list[int]]:
    """Row indices in groups of similar length, chosen to compute the fewest padded tokens.

    A batch pads every row to its longest one; a DPO batch holds each pair's chosen and rejected
    answers, whose lengths differ most. Each group costs its rows x its longest row, plus
    `group_cost` tokens for the extra forward (Python overhead, smaller matmuls).
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    size = [lengths[i] for i in order]
    n = len(order)
    inf = float("inf")
    # best[k][j]: cheapest split of the j longest rows into k groups; cut[k][j]: start of the last
    best = [[inf] * (n + 1) for _ in range(max_groups + 1)]
    cut = [[0] * (n + 1) for _ in range(max_groups + 1)]
    best[0][0] = 0
    for k in range(1, max_groups + 1):
        for j in range(1, n + 1):
            for i in range(j):
                cost = best[k - 1][i] + (j - i) * size[i] + group_cost
                if cost < best[k][j]:
                    best[k][j], cut[k][j] = cost, i
    k = min(range(1, max_groups + 1), key=lambda g: best[g][n])
    groups, j = [], n
    while k:
        i = cut[k][j]
        groups.append(order[i:j])
        j, k = i, k - 1
    return groups[::-1]


def run_unpadded(model) -> None:
    """Run `model`'s backbone on groups of rows of similar length, each cut to its longest row.

    The same hidden states at every real token (zeros at padding, which nothing reads: TRL masks
    it out), without computing the padding: on a DPO batch of short rejected and long chosen
    answers that is ~20 % of the tokens. Only right-padded 2D masks without caches or extra
    outputs are split; anything else runs as before.
    """
    import torch
    import torch.nn.functional as F
    from peft import PeftModel

    backbone = (model.get_base_model() if isinstance(model, PeftModel) else model).base_model
    forward = backbone.forward
    extras = ("inputs_embeds", "past_key_values", "position_ids", "cache_position")
    outputs = ("output_attentions", "output_hidden_states", "output_router_logits")

    def unpadded(*args: Any, input_ids=None, attention_mask=None, **kwargs: Any):
        plain = args or input_ids is None or attention_mask is None or attention_mask.dim() != 2
        plain = plain or kwargs.get("return_dict") is False
        if (
            plain
            or any(kwargs.get(k) is not None for k in extras)
            or any(kwargs.get(k) for k in outputs)
        ):
            return forward(*args, input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        lengths = attention_mask.sum(dim=1)
        width = attention_mask.size(1)
        positions = torch.arange(width, device=attention_mask.device)
        right_padded = torch.equal(attention_mask.bool(), positions < lengths.unsqueeze(1))
        groups = length_groups(lengths.tolist()) if right_padded else []
        if len(groups) < 2:
            return forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        parts, order = [], []
        for rows in groups:
            index = torch.tensor(rows, device=input_ids.device)
            cut = max(1, int(lengths[index].max()))
            out = forward(
                input_ids=input_ids[index, :cut],
                attention_mask=attention_mask[index, :cut],
                **kwargs,
            )
            parts.append(F.pad(out.last_hidden_state, (0, 0, 0, width - cut)))
            order += rows
        inverse = torch.argsort(torch.tensor(order, device=input_ids.device))  # back to batch order
        return type(out)(last_hidden_state=torch.cat(parts)[inverse])

    backbone.forward = unpadded
