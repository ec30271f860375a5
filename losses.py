"""The losses of the paper: pseudo-gloss pre-training (eqs. 1-3), video-language alignment (eq. 4),
their sum (eq. 5) and translation (eq. 6). Pure functions of tensors; only torch is imported, so the file
works copied alone into another project."""
from typing import NamedTuple

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn.functional as F


def wide(x):
    """At least float32 for the softmaxes and logs: autocast's bf16/fp16 upcast, float64 kept (the tests)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


# ----------------------------------------------------------------------------------------------
# Pseudo-gloss pre-training (§3.2, eqs. 1-3)


def gloss_evidence(z, mask, prototypes, tau_t, tau_u):
    """Eqs. 1-2 and E of eq. 3: each segment's evidence for each prototype, E = S^T * S^U [B, T, U+1] (the zero
    non-sign prototype last; padded segments get 0). Summed over time it is E-hat.

    z [B, T, 300] projected segments Z', mask [B, T] (True = valid), prototypes [U+1, 300] with the
    zero non-sign vector last, tau_t / tau_u the two temperatures.
    """
    # eq. 1: cosine similarity; normalize() leaves the zero prototype at zero, so its cosine is 0, not NaN
    s = F.normalize(wide(z), dim=-1) @ F.normalize(wide(prototypes), dim=-1).T              # S [B, T, U+1]
    # eq. 2: softmax over time (padded steps excluded) and over prototypes
    s_time = (s / tau_t).masked_fill(~mask[..., None], float("-inf")).softmax(dim=1)
    s_proto = (s / tau_u).softmax(dim=2)
    return s_time * s_proto                                                                # E [B, T, U+1]


def pseudo_gloss_loss(z, mask, prototypes, labels, tau_t, tau_u, variant: str = "paper"):
    """L_psp: which pseudo-glosses occur in the video, as a multi-label loss on E-hat; labels [B, U] multi-hot.

    variant="paper": eq. 3's binary cross-entropy on the U pseudo-gloss columns (the non-sign column dropped).
    variant="authors": the authors' code, BCE-with-logits applied to E-hat clamped to [1e-8, 1 - 1e-8], i.e.
    to sigmoid(E-hat), over all U+1 columns with target 0 for the non-sign one (DESIGN.md "Losses").
    """
    e_hat = gloss_evidence(z, mask, prototypes, tau_t, tau_u).sum(dim=1)                  # eq. 3, [B, U+1]
    h = labels.float()
    if variant == "paper":
        e_hat = e_hat[:, :-1].clamp(1e-6, 1 - 1e-6)                                      # [B, U]
        return -(h * e_hat.log() + (1 - h) * (1 - e_hat).log()).mean()
    if variant == "authors":
        return F.binary_cross_entropy_with_logits(e_hat.clamp(1e-8, 1 - 1e-8), F.pad(h, (0, 1)))
    raise ValueError(f"pseudo_gloss_loss: variant must be 'paper' or 'authors', not {variant!r}")


# ----------------------------------------------------------------------------------------------
# Video-language alignment (§3.2, eq. 4)


def masked_mean(x, mask):
    """Average pooling over valid steps (§3.2, M~ and L~): x [B, T, D], mask [B, T] -> [B, D]."""
    m = mask[..., None].to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1)


def clip_loss(video, text, temperature):
    """L_align, eq. 4: symmetric InfoNCE over the (global) batch; logits are cosine similarities / temperature."""
    video, text = gather(video), gather(text)                                   # [B, D], all processes
    logits = F.normalize(wide(video), dim=-1) @ F.normalize(wide(text), dim=-1).T / temperature  # [B, B]
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


# ----------------------------------------------------------------------------------------------
# Pre-training (eq. 5) and translation (eq. 6)


class PretrainLoss(NamedTuple):
    """Eq. 5's total and its two terms (scalar tensors)."""
    loss: torch.Tensor
    align: torch.Tensor
    psp: torch.Tensor


def pretrain_loss(out: dict, labels, tau: float, lambda_psp: float = 1.0, lambda_align: float = 1.0,
                  psp_variant: str = "paper"):
    """L_pre-train = L_align + lambda * L_psp (eq. 5), from PretrainModel's outputs `out` and the pseudo-glosses
    H of each video, labels [B, U] multi-hot; `tau` is both of eq. 2's temperatures. lambda_align (1 in the
    paper) lets an ablation drop the alignment term. -> PretrainLoss(loss, align, psp)"""
    psp = psp_loss(out, labels, tau, psp_variant)                                                # eqs. 1-3
    align = clip_loss(*pooled(out), out["temperature"])                                          # eq. 4
    return pretrain_terms(align, psp, lambda_psp, lambda_align)                                  # eq. 5


def psp_loss(out: dict, labels, tau: float, psp_variant: str = "paper"):
    """L_psp (eqs. 1-3) of PretrainModel's outputs: a mean over the videos of `out`."""
    return pseudo_gloss_loss(out["z_prime"], out["mask"], out["prototypes"], labels, tau, tau, variant=psp_variant)


def pooled(out: dict) -> tuple:
    """Eq. 4's inputs: M~, the CLS token and the valid segments averaged, and L~, the sentence's tokens averaged
    (each [B, D])."""
    return masked_mean(out["video"], out["video_mask"]), masked_mean(out["text"], out["text_mask"])


def pretrain_terms(align, psp, lambda_psp: float = 1.0, lambda_align: float = 1.0) -> PretrainLoss:
    """Eq. 5 from its two terms."""
    return PretrainLoss(lambda_align * align + lambda_psp * psp, align, psp)


def translation_loss(logits, labels, pad_id: int, label_smoothing: float = 0.2):
    """L_SLT, eq. 6: token cross-entropy against the reference, padding ignored. logits [B, L, V], labels [B, L]."""
    return F.cross_entropy(wide(logits).flatten(0, 1), labels.flatten(), ignore_index=pad_id,
                           label_smoothing=label_smoothing)


# ----------------------------------------------------------------------------------------------
# Multi-process training only: contrastive negatives from every process (torchrun)


def gather(x):
    """Embeddings of every process, in rank order, with gradients flowing back to each process's own
    rows (summed over processes, which data-parallel averaging then undoes); x itself in one process."""
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return x
    return torch.cat(dist_nn.all_gather(x))
