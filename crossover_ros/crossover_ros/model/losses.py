"""Contrastive losses: symmetric InfoNCE, anchored on one modality, with missing pairs masked."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812


def info_nce(
    a: torch.Tensor,
    b: torch.Tensor,
    logit_scale: torch.Tensor,
    same_place: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE between paired unit vectors a[i] <-> b[i] (N, D); 0 for N < 2.

    ``same_place`` (N, N) marks pairs that show one place (another scan of the room): they are
    not negatives and are left out of the softmax.
    """
    if a.shape[0] < 2:
        return a.new_zeros(())
    logits = logit_scale * a @ b.T
    if same_place is not None:
        eye = torch.eye(len(logits), dtype=torch.bool, device=logits.device)
        logits = logits.masked_fill(same_place & ~eye, float("-inf"))
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def anchored_info_nce(
    embeddings: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    anchor: str,
    logit_scale: torch.Tensor,
    same_place: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Sum of InfoNCE(anchor, m) over modalities m, on the rows where both are present.

    Embeddings are (N, D) (flatten (B, K, D) object tokens first); masks are (N,) booleans. A
    modality paired with the anchor on fewer than two rows adds nothing, so training works with
    partly paired data (the missing-modality setting of the paper). ``same_place`` as in
    :func:`info_nce`, over the N rows.
    """
    total = embeddings[anchor].new_zeros(())
    parts = {}
    for modality, vectors in embeddings.items():
        if modality == anchor:
            continue
        both = masks[anchor] & masks[modality]
        rows_same = None if same_place is None else same_place[both][:, both]
        loss = info_nce(embeddings[anchor][both], vectors[both], logit_scale, rows_same)
        parts[modality] = float(loss.detach())
        total = total + loss
    return total, parts


def object_set_similarities(
    a: torch.Tensor, a_mask: torch.Tensor, b: torch.Tensor, b_mask: torch.Tensor
) -> torch.Tensor:
    """(B, B) symmetric Chamfer similarity of every scene's objects in ``a`` (B, K, D) with every
    scene's objects in ``b``: ``mapdb.search.object_set_similarity``, batched and
    differentiable. Every scene needs at least one present object on each side."""
    cosine = torch.einsum("ikd,jld->ijkl", a, b)
    pair = a_mask[:, None, :, None] & b_mask[None, :, None, :]
    cosine = cosine.masked_fill(~pair, float("-inf"))
    a_best = cosine.amax(dim=3).masked_fill(~a_mask[:, None, :], 0.0)  # (B, B, K)
    b_best = cosine.amax(dim=2).masked_fill(~b_mask[None, :, :], 0.0)  # (B, B, L)
    a_mean = a_best.sum(-1) / a_mask.sum(-1, keepdim=True)
    b_mean = b_best.sum(-1) / b_mask.sum(-1)[None, :]
    return 0.5 * (a_mean + b_mean)


def object_set_info_nce(
    descriptors: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
    anchor: str,
    temperature: float,
    same_place: torch.Tensor,
) -> torch.Tensor:
    """InfoNCE over the scenes of a batch, scored by their object sets: a scene's anchor objects
    must find the same scene's objects of each other modality, not another scene's.

    ``same_place`` (B, B) marks other scans of one room: not negatives, left out of the softmax.
    Scenes missing the anchor or the modality are left out; fewer than two left adds nothing.
    """
    total = descriptors[anchor].new_zeros(())
    for modality, objects in descriptors.items():
        if modality == anchor:
            continue
        keep = masks[anchor].any(1) & masks[modality].any(1)
        if int(keep.sum()) < 2:
            continue
        similarity = object_set_similarities(
            descriptors[anchor][keep], masks[anchor][keep], objects[keep], masks[modality][keep]
        )
        eye = torch.eye(len(similarity), dtype=torch.bool, device=similarity.device)
        others = same_place[keep][:, keep] & ~eye
        logits = (similarity / temperature).masked_fill(others, float("-inf"))
        target = torch.arange(len(logits), device=logits.device)
        total = total + 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
    return total
