"""Contrastive losses: symmetric InfoNCE, anchored on one modality, with missing pairs masked."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between paired unit vectors a[i] <-> b[i] (N, D); 0 for N < 2."""
    if a.shape[0] < 2:
        return a.new_zeros(())
    logits = logit_scale * a @ b.T
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def anchored_info_nce(
    embeddings: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    anchor: str,
    logit_scale: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of InfoNCE(anchor, m) over modalities m, on the rows where both are present.

    Embeddings are (N, D) (flatten (B, K, D) object tokens first); masks are (N,) booleans. A
    modality paired with the anchor on fewer than two rows adds nothing, so training works with
    partly paired data (the missing-modality setting of the paper).
    """
    total = embeddings[anchor].new_zeros(())
    parts = {}
    for modality, vectors in embeddings.items():
        if modality == anchor:
            continue
        both = masks[anchor] & masks[modality]
        loss = info_nce(embeddings[anchor][both], vectors[both], logit_scale)
        parts[modality] = float(loss.detach())
        total = total + loss
    return total, parts
