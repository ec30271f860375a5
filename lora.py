"""LoRA (Hu et al. 2021), written out: the adapters that fine-tune the frozen DINOv2 and mBART (§3.1, §4.2).

    y = W x + B A dropout(x) * alpha / r,   W frozen, A [r, in], B [out, r] = 0 at the start

`LoRALinear` wraps one nn.Linear; `add_lora` wraps the named Linears of a module (mBART's q_proj and v_proj,
r 16, alpha 32); `add_visual_lora` adapts a DINOv2 block as the authors do (q, k, v as one fused map, the
attention output and both MLP layers; r 4, alpha 4). Only torch is needed.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LoRALinear(nn.Module):
    """LoRA: y = W x + B A dropout(x) * alpha / r, with W frozen and B initialised to zero. A is initialised
    as peft does (Kaiming-uniform), or from N(0, init_std) when given (the authors' visual LoRA)."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float, init_std: float = None):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=base.weight.device)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=base.weight.device)
        if init_std is None:
            nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        else:
            nn.init.normal_(self.lora_A.weight, std=init_std)
        nn.init.zeros_(self.lora_B.weight)
        self.dropout = nn.Dropout(dropout)
        self.scaling = alpha / r

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(self.dropout(x))) * self.scaling


def add_lora(module: nn.Module, targets: tuple, r: int, alpha: float, dropout: float,
             init_std: float = None) -> nn.Module:
    """Wrap every nn.Linear of `module` whose attribute name is in `targets` with LoRALinear."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(parent, name, LoRALinear(child, r, alpha, dropout, init_std))
    return module


class FusedQKVAttention(nn.Module):
    """DINOv2's self-attention with q, k and v as one fused map W_qkv [3C, C] (as in DINOv2's own code), so
    that one LoRA (A [r, C], B [3C, r]) adapts all three; the output projection has its own LoRA.
    Replaces a transformers Dinov2Attention (q_proj, k_proj, v_proj, o_proj) and computes the same function."""

    def __init__(self, attn: nn.Module, r: int, alpha: float, dropout: float, init_std: float = 0.02):
        super().__init__()
        self.heads, self.scaling = attn.num_attention_heads, attn.scaling
        q, k, v = attn.q_proj, attn.k_proj, attn.v_proj
        qkv = nn.Linear(q.in_features, 3 * q.out_features, bias=q.bias is not None, device=q.weight.device)
        qkv.weight = nn.Parameter(torch.cat([q.weight, k.weight, v.weight]).detach())          # [3C, C]
        if q.bias is not None:
            qkv.bias = nn.Parameter(torch.cat([q.bias, k.bias, v.bias]).detach())
        self.qkv = LoRALinear(qkv, r, alpha, dropout, init_std)
        self.o_proj = LoRALinear(attn.o_proj, r, alpha, dropout, init_std)

    def forward(self, x, attention_mask=None, **kwargs):
        # x [N, L, C] -> ([N, L, C], None), the interface of Dinov2Attention
        N, L, C = x.shape
        q, k, v = self.qkv(x).view(N, L, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)  # [N, H, L, d]
        y = F.scaled_dot_product_attention(q, k, v, scale=self.scaling)
        return self.o_proj(y.transpose(1, 2).reshape(N, L, C)), None


def add_visual_lora(block: nn.Module, r: int, alpha: float, dropout: float) -> nn.Module:
    """The authors' visual LoRA on one DINOv2 block, whose own weights freeze: fused qkv, attention output,
    both MLP layers; A ~ N(0, 0.02), B = 0."""
    block.requires_grad_(False)
    block.attention = FusedQKVAttention(block.attention, r, alpha, dropout, init_std=0.02)
    return add_lora(block.mlp, ("fc1", "fc2"), r, alpha, dropout, init_std=0.02)
