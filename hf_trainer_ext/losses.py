"""Per-token cross-entropy computed once, from which both the training loss and every block's mean loss come."""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def causal_lm_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token loss [B, T] (0 where ignored) and the valid-token mask [B, T].

    Labels are shifted the way ``transformers.loss.ForCausalLMLoss`` shifts them (pad with -100, drop the first),
    and the CE runs on the whole, unsliced logits, so nothing of size B*T*V is copied and the sum equals the model's
    own loss numerator.
    """
    shift = F.pad(labels, (0, 1), value=IGNORE_INDEX)[..., 1:]
    vocab = logits.shape[-1]
    tok = F.cross_entropy(logits.float().reshape(-1, vocab), shift.reshape(-1).to(logits.device),
                          ignore_index=IGNORE_INDEX, reduction="none")
    return tok.view(shift.shape), shift.ne(IGNORE_INDEX)


def block_mean_losses(tok: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean token loss of each row (block); NaN for a row without valid tokens."""
    count = valid.sum(-1)
    return tok.sum(-1) / count.to(tok.dtype)
