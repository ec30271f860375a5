"""The model of "Hierarchical Feature Alignment for Gloss-Free Sign Language Translation" (Fig. 1).

A sign video is encoded at three levels (paper §3.1):
  frames   -> VisualEncoder:   DINOv2 ViT-S/14 (+LoRA on its top 3 blocks), CLS -> Linear -> BatchNorm
  segments -> TemporalEncoder: local self-attention with RoPE, temporal downsampling after block 2
  video    -> mBART's encoder with LoRA
Pre-training (§3.2) adds the pseudo-gloss head and a contrastive temperature; fine-tuning (§3.3) adds
a linear mapper and mBART's decoder. Every choice the paper leaves open is fixed in DESIGN.md.

    python model.py --count [--preset paper|tiny]    # parameter counts of Table 3, on the meta device
"""
import argparse
import contextlib
import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
import torch.nn as nn
import torch.nn.functional as F
from transformers import Dinov2Config, Dinov2Model, MBartConfig, MBartForConditionalGeneration
from transformers.modeling_outputs import BaseModelOutput

try:  # optional: xformers' memory-efficient attention, CUDA only (paper §4.2)
    import xformers.ops as xops
except ImportError:
    xops = None

# The architectures of facebook/dinov2-small and facebook/mbart-large-cc25, so that the paper preset
# can be counted (and built with random weights) without a download.
DINOV2_SMALL = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                    mlp_ratio=4, patch_size=14, image_size=518, layerscale_value=1.0)
MBART_LARGE_CC25 = dict(d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
                        decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096,
                        max_position_embeddings=1024, scale_embedding=False, dropout=0.1,
                        pad_token_id=1, bos_token_id=0, eos_token_id=2)


@dataclass
class Config:
    """All architecture choices of DESIGN.md's table; `paper` and `tiny` are the two presets."""
    dino: str = "facebook/dinov2-small"           # hub name or local folder (paper preset)
    dino_arch: dict = field(default_factory=lambda: dict(DINOV2_SMALL))
    mbart: str = "facebook/mbart-large-cc25"
    mbart_arch: dict = field(default_factory=lambda: dict(MBART_LARGE_CC25))
    pretrained: bool = True                       # load the weights above; False = random init
    freeze_llm: bool = True                       # mBART's base weights frozen (only its LoRA trains)
    image_size: int = 224                         # 224x224 -> 257 DINOv2 tokens
    dino_lora_blocks: int = 3                     # LoRA on the top 3 of 12 DINOv2 blocks (§4.2)
    frame_dim: int = 512                          # D* of F
    temporal_layers: int = 4
    temporal_heads: int = 8
    temporal_mlp: int = 2048
    window: int = 7                               # local attention: offsets -3..+3
    downsample_after: int = 2                     # avg-pool time after this block
    llm_dim: int = 1024
    gloss_dim: int = 300                          # fastText prototypes, D' = 300
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    vocab_size: int = 2172                        # trimmed mBART vocabulary on PHOENIX14T


PRESETS = {
    "paper": Config(),
    # Same classes and code paths, small enough for 2 CPU cores. Its mBART is random, so there is no
    # pre-trained knowledge for LoRA to protect: the tiny preset trains mBART's base weights too.
    "tiny": Config(
        dino="", mbart="", pretrained=False, freeze_llm=False, image_size=32, dino_lora_blocks=1,
        dino_arch=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                       mlp_ratio=2, patch_size=8, image_size=32, layerscale_value=1.0),
        mbart_arch=dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                        max_position_embeddings=512, scale_embedding=False, dropout=0.1,
                        pad_token_id=1, bos_token_id=0, eos_token_id=2),
        frame_dim=64, temporal_layers=4, temporal_heads=4, temporal_mlp=128, llm_dim=64,
        lora_r=4, lora_alpha=8, vocab_size=0),
}


def get_config(preset: str, **overrides) -> Config:
    """A preset by name, with fields overridden (e.g. vocab_size from the tokenizer)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (--preset): choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[preset], **overrides)


# ----------------------------------------------------------------------------------------------
# LoRA (Hu et al. 2021), used on DINOv2's top blocks and on mBART's q_proj/v_proj (§3.1, §4.2)

class LoRALinear(nn.Module):
    """LoRA: y = W x + B A dropout(x) * alpha / r, with W frozen and B initialised to zero."""

    def __init__(self, base: nn.Linear, r: int, alpha: float, dropout: float):
        super().__init__()
        self.base = base.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=base.weight.device)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=base.weight.device)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.dropout = nn.Dropout(dropout)
        self.scaling = alpha / r
        self.enabled = True

    def forward(self, x):
        y = self.base(x)
        if not self.enabled:
            return y
        return y + self.lora_B(self.lora_A(self.dropout(x))) * self.scaling


def add_lora(module: nn.Module, targets: tuple, r: int, alpha: float, dropout: float) -> nn.Module:
    """Wrap every nn.Linear of `module` whose attribute name is in `targets` with LoRALinear."""
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if name in targets and isinstance(child, nn.Linear):
                setattr(parent, name, LoRALinear(child, r, alpha, dropout))
    return module


@contextlib.contextmanager
def lora_disabled(module: nn.Module):
    """Switch every LoRA inside `module` off (the text encoder is the LLM encoder without LoRA)."""
    loras = [m for m in module.modules() if isinstance(m, LoRALinear)]
    for m in loras:
        m.enabled = False
    try:
        yield module
    finally:
        for m in loras:
            m.enabled = True


def requires_grad(module: nn.Module) -> bool:
    """Whether anything in `module` trains; frozen modules run without autograd."""
    return any(p.requires_grad for p in module.parameters())


# ----------------------------------------------------------------------------------------------
# Frame level: the visual encoder (§3.1, "Visual Encoder")

class FrameBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the valid frames of the whole batch; under data-parallel training its statistics
    are summed over every process (any device, unlike nn.SyncBatchNorm), as one process would see them."""

    def forward(self, x):
        # x [N, C], the valid frames of this process
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        x = x.float()
        stats = torch.cat([x.sum(0), (x * x).sum(0), x.new_full((1,), len(x))])
        stats = dist_nn.all_reduce(stats)                    # differentiable sum over processes
        n = stats[-1]
        mean, var = stats[:x.shape[1]] / n, stats[x.shape[1]:-1] / n - (stats[:x.shape[1]] / n) ** 2
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias

class VisualEncoder(nn.Module):
    """DINOv2 with LoRA on its top blocks; CLS -> Linear -> BatchNorm over the valid frames: F [B,T*,D*]."""

    def __init__(self, dino: Dinov2Model, cfg: Config):
        super().__init__()
        self.dino = dino.requires_grad_(False)
        for block in dino.encoder.layer[-cfg.dino_lora_blocks:]:
            add_lora(block, ("q_proj", "v_proj"), cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)
        self.n_frozen = len(dino.encoder.layer) - cfg.dino_lora_blocks
        self.proj = nn.Linear(dino.config.hidden_size, cfg.frame_dim)
        self.norm = FrameBatchNorm(cfg.frame_dim)

    def forward(self, frames, mask):
        # frames [B, T*, 3, H, W], mask [B, T*] -> [B, T*, D*]; padded frames never reach DINOv2
        x = frames[mask]                                            # [N, 3, H, W], the valid frames
        blocks = self.dino.encoder.layer
        with torch.no_grad():  # the frozen blocks below LoRA keep no activations for backward
            h = self.dino.embeddings(x)                             # [N, 1 + patches, C]
            for block in blocks[:self.n_frozen]:
                h = block(h)
        with torch.set_grad_enabled(torch.is_grad_enabled() and requires_grad(self)):
            for block in blocks[self.n_frozen:]:
                h = block(h)
            cls = self.dino.layernorm(h[:, 0])                      # [N, C]
            f = self.norm(self.proj(cls))                           # BatchNorm over valid frames only
        out = f.new_zeros(*mask.shape, f.shape[-1])
        out[mask] = f
        return out


# ----------------------------------------------------------------------------------------------
# Segment level: the temporal encoder (§3.1, "Temporal Encoder")

def rope(x, base: float = 10000.0):
    """Rotary position embedding (Su et al.) on x [B, H, T, d]: pairs (i, i + d/2) rotate by t * theta_i."""
    T, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d // 2, device=x.device, dtype=torch.float32) * 2 / d)  # [d/2]
    angle = torch.arange(T, device=x.device, dtype=torch.float32)[:, None] * theta           # [T, d/2]
    cos, sin = angle.cos().repeat(1, 2).to(x.dtype), angle.sin().repeat(1, 2).to(x.dtype)    # [T, d]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], dim=-1) * sin


def local_attention_mask(mask, window: int):
    """[B, 1, T, T] bool: query i may see key j iff |i - j| <= window // 2 and j is a valid step."""
    T = mask.shape[1]
    pos = torch.arange(T, device=mask.device)
    band = (pos[:, None] - pos[None, :]).abs() <= window // 2                     # [T, T]
    # a padded query sees the whole band so that its softmax is defined; its output is discarded
    keys = mask[:, None, :] | ~mask[:, :, None]                                  # [B, T, T]
    return (band & keys)[:, None]


class LocalSelfAttention(nn.Module):
    """Multi-head self-attention within a local window (size 7, §3.1), RoPE on q and k, key padding mask."""

    def __init__(self, dim: int, heads: int, window: int = 7, dropout: float = 0.0):
        super().__init__()
        self.heads, self.window, self.dropout = heads, window, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask):
        # x [B, T, D], mask [B, T] (True = valid) -> [B, T, D]
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # [B,H,T,d]
        q, k = rope(q), rope(k)
        allowed = local_attention_mask(mask, self.window)                         # [B, 1, T, T]
        p = self.dropout if self.training else 0.0
        if xops is not None and x.is_cuda:
            y = xformers_attention(q, k, v, allowed, p)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        return self.proj(y.transpose(1, 2).reshape(B, T, D))


def xformers_attention(q, k, v, allowed, p):
    """The same attention through xformers' memory-efficient kernel (q, k, v [B, H, T, d])."""
    B, H, T, d = q.shape
    pad = -T % 8  # xformers wants the bias' last dimension aligned to 8
    bias = torch.zeros(B, H, T, T + pad, device=q.device, dtype=q.dtype)
    bias[..., :T].masked_fill_(~allowed, float("-inf"))
    y = xops.memory_efficient_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                        attn_bias=bias[..., :T], p=p)            # [B, T, H, d]
    return y.transpose(1, 2)


class TemporalBlock(nn.Module):
    """Pre-norm transformer block with layer scale (init 1e-5): local attention, then a GELU MLP."""

    def __init__(self, dim: int, heads: int, mlp: int, window: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = LocalSelfAttention(dim, heads, window)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Linear(mlp, dim))
        self.scale1 = nn.Parameter(torch.full((dim,), 1e-5))
        self.scale2 = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x, mask):
        x = x + self.scale1 * self.attn(self.norm1(x), mask)
        return x + self.scale2 * self.mlp(self.norm2(x))


def downsample(x, mask):
    """avg_pool1d(kernel 3, stride 2, padding 1) over time: T* -> ceil(T*/2); step j is valid iff 2j was."""
    x = x * mask[..., None]                   # padded steps count as the pool's zero padding
    x = F.avg_pool1d(x.transpose(1, 2), kernel_size=3, stride=2, padding=1).transpose(1, 2)
    return x, mask[:, ::2]


class TemporalEncoder(nn.Module):
    """Frames F [B,T*,D*] -> segments Z [B,T,D], T = ceil(T*/2): 4 local-attention blocks, pooled after 2."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.blocks = nn.ModuleList(TemporalBlock(cfg.frame_dim, cfg.temporal_heads, cfg.temporal_mlp, cfg.window)
                                    for _ in range(cfg.temporal_layers))
        self.downsample_after = cfg.downsample_after

    def forward(self, x, mask):
        for i, block in enumerate(self.blocks):
            if i == self.downsample_after:
                x, mask = downsample(x, mask)
            x = block(x, mask)
        return x * mask[..., None], mask


class SignEncoder(nn.Module):
    """Frames to segment features Z and to the LLM's width: the part shared by pre-training and fine-tuning."""

    def __init__(self, dino: Dinov2Model, cfg: Config):
        super().__init__()
        self.visual = VisualEncoder(dino, cfg)
        self.temporal = TemporalEncoder(cfg)
        self.to_llm = nn.Linear(cfg.frame_dim, cfg.llm_dim)

    def forward(self, frames, frame_mask):
        # -> Z [B, T, D], its mask [B, T], and Z at the LLM's width [B, T, llm_dim]
        with torch.set_grad_enabled(torch.is_grad_enabled() and requires_grad(self)):
            z, mask = self.temporal(self.visual(frames, frame_mask), frame_mask)
            return z, mask, self.to_llm(z)


# ----------------------------------------------------------------------------------------------
# Pre-training (§3.2) and translation (§3.3)

@contextlib.contextmanager
def frozen_text_encoder(encoder: nn.Module):
    """The paper's frozen text encoder psi_te: the LLM encoder with LoRA off, in eval mode, no autograd."""
    was_training = encoder.training
    encoder.eval()
    try:
        with lora_disabled(encoder), torch.no_grad():
            yield encoder
    finally:
        encoder.train(was_training)


class PretrainModel(nn.Module):
    """Everything eqs. 1-5 need: segments Z' for the pseudo-gloss loss, M and L for the alignment loss."""

    def __init__(self, dino: Dinov2Model, llm_encoder: nn.Module, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.sign = SignEncoder(dino, cfg)
        self.llm_encoder = llm_encoder
        self.gloss_head = nn.Linear(cfg.frame_dim, cfg.gloss_dim)   # Z -> Z' (§3.2)
        self.tau_t = nn.Parameter(torch.tensor(0.1))                # eq. 2, clamped to [0.01, 1] on use
        self.tau_u = nn.Parameter(torch.tensor(0.1))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # eq. 4's 1/tau, CLIP-style

    def forward(self, frames, frame_mask, text_ids, text_mask):
        z, mask, s = self.sign(frames, frame_mask)
        m = self.llm_encoder(inputs_embeds=s, attention_mask=mask.long()).last_hidden_state   # M [B, T, D]
        with frozen_text_encoder(self.llm_encoder) as text_encoder:
            l = text_encoder(input_ids=text_ids, attention_mask=text_mask.long()).last_hidden_state  # L
        return dict(
            glosses=self.gloss_head(z), mask=mask,                  # Z' [B, T, 300], [B, T]
            video=m, text=l, text_mask=text_mask,                   # M [B, T, D], L [B, T_text, D]
            tau_t=self.tau_t.clamp(0.01, 1.0), tau_u=self.tau_u.clamp(0.01, 1.0),
            temperature=1 / self.logit_scale.exp().clamp(max=100))


class TranslationModel(nn.Module):
    """Sign encoder -> Linear(512, 1024) -> mapper -> mBART encoder + decoder (§3.3, eq. 6)."""

    def __init__(self, dino: Dinov2Model, mbart: MBartForConditionalGeneration, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.sign = SignEncoder(dino, cfg)
        self.mapper = nn.Linear(cfg.llm_dim, cfg.llm_dim)
        self.mbart = mbart

    def encode(self, frames, frame_mask):
        """Video-level features M [B, T, D] and their mask. `frames` [B, T*, 3, H, W], or the sign encoder's
        output [B, T, llm_dim] computed beforehand (fine-tuning stage 1 with --cache-features)."""
        if frames.dim() == 3:
            s, mask = frames, frame_mask
        else:
            _, mask, s = self.sign(frames, frame_mask)
        m = self.mbart.model.encoder(inputs_embeds=self.mapper(s), attention_mask=mask.long())
        return m.last_hidden_state, mask

    def forward(self, frames, frame_mask, decoder_input_ids, decoder_mask):
        """Next-token logits [B, L, V] for teacher forcing (eq. 6)."""
        m, mask = self.encode(frames, frame_mask)
        return self.mbart(encoder_outputs=(m,), attention_mask=mask.long(),
                          decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_mask.long()).logits

    @torch.no_grad()
    def translate(self, frames, frame_mask, start_id: int, eos_id: int, pad_id: int,
                  num_beams: int = 4, max_new_tokens: int = 100):
        """Beam search from mBART's language token (de_DE); token ids [B, L] without the start token."""
        m, mask = self.encode(frames, frame_mask)
        out = self.mbart.generate(encoder_outputs=BaseModelOutput(last_hidden_state=m), attention_mask=mask.long(),
                                  decoder_start_token_id=start_id, bos_token_id=start_id, eos_token_id=eos_id,
                                  pad_token_id=pad_id, forced_bos_token_id=None, num_beams=num_beams,
                                  max_new_tokens=max_new_tokens, do_sample=False)
        return out[:, 1:]


# ----------------------------------------------------------------------------------------------
# Building the models from a preset

def _load(cls, name: str, flag: str):
    try:
        return cls.from_pretrained(name)
    except (OSError, ValueError) as e:
        raise SystemExit(f"could not load {name!r} ({type(e).__name__}: {e}).\nDownload it where the hub is "
                         f"reachable and pass its local folder with {flag} PATH.") from None


def load_dinov2(cfg: Config) -> Dinov2Model:
    """DINOv2 ViT-S/14 (facebook/dinov2-small) or, for random weights, the same class from cfg.dino_arch."""
    if cfg.pretrained:
        return _load(Dinov2Model, cfg.dino, "--dino")
    with seeded(0):
        return Dinov2Model(Dinov2Config(**cfg.dino_arch))


def load_mbart(cfg: Config, keep_ids=None) -> MBartForConditionalGeneration:
    """mBART-large-cc25, its vocabulary trimmed to `keep_ids` (DESIGN.md, Tokenizer); or random weights."""
    if cfg.pretrained:
        mbart = _load(MBartForConditionalGeneration, cfg.mbart, "--mbart")
        if keep_ids is not None:
            trim_vocabulary(mbart, keep_ids)
        return mbart
    with seeded(1):
        return MBartForConditionalGeneration(MBartConfig(vocab_size=cfg.vocab_size, **cfg.mbart_arch))


@contextlib.contextmanager
def seeded(seed: int):
    """Random weights that stand in for a download: the same in every script, whatever the run's seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def trim_vocabulary(mbart: MBartForConditionalGeneration, keep_ids: torch.Tensor):
    """Keep only the embedding rows (and output logits) of `keep_ids`; new token i is old token keep_ids[i]."""
    old = mbart.model.shared
    new = type(old)(len(keep_ids), old.embedding_dim, old.padding_idx, embed_scale=old.embed_scale)
    new.weight = nn.Parameter(old.weight.data[keep_ids].clone(), requires_grad=old.weight.requires_grad)
    mbart.model.set_input_embeddings(new)   # shared by encoder and decoder
    mbart.lm_head.weight = new.weight       # tied output projection
    mbart.lm_head.out_features = len(keep_ids)
    mbart.final_logits_bias = mbart.final_logits_bias[:, keep_ids].clone()
    mbart.config.vocab_size = len(keep_ids)
    return mbart


def _add_llm_lora(module, cfg):
    if cfg.freeze_llm:
        module.requires_grad_(False)
    return add_lora(module, ("q_proj", "v_proj"), cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)


def build_pretrain_model(cfg: Config, keep_ids=None) -> PretrainModel:
    """The pre-training model; only LoRA and the new layers train (DESIGN.md)."""
    encoder = load_mbart(cfg, keep_ids).model.encoder
    return PretrainModel(load_dinov2(cfg), _add_llm_lora(encoder, cfg), cfg)


def build_translation_model(cfg: Config, keep_ids=None) -> TranslationModel:
    """The fine-tuning model: LoRA on mBART's encoder and on the decoder's self- and cross-attention."""
    return TranslationModel(load_dinov2(cfg), _add_llm_lora(load_mbart(cfg, keep_ids), cfg), cfg)


# ----------------------------------------------------------------------------------------------
# Parameter counts (Table 3)

def count(module: nn.Module):
    """(trainable, total) parameters, each tensor once."""
    params = list(module.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def parts(model: nn.Module) -> dict:
    """Name -> (trainable, total) for each part of DESIGN.md's table."""
    rows = {}
    if hasattr(model, "sign"):
        v = model.sign.visual
        lora = sum(p.numel() for n, p in v.dino.named_parameters() if "lora_" in n)
        rows["image encoder"] = (0, count(v.dino)[1] - lora)
        rows["  its LoRA"] = (lora, lora)
        rows["frame head"] = count(nn.ModuleList([v.proj, v.norm]))
        rows["temporal encoder"] = count(model.sign.temporal)
        rows["to LLM width"] = count(model.sign.to_llm)
    if isinstance(model, PretrainModel):
        rows["pseudo-gloss head"] = tuple(a + 2 for a in count(model.gloss_head))
        rows["contrastive temperature"] = (1, 1)
        llm = {"LLM encoder": model.llm_encoder}
    else:
        rows["mapper"] = count(model.mapper)
        llm = {"LLM encoder": model.mbart.model.encoder, "decoder": model.mbart.model.decoder}
    shared = llm["LLM encoder"].embed_tokens.weight      # tied: encoder, decoder and output projection
    for name, m in llm.items():
        lora = sum(p.numel() for n, p in m.named_parameters() if "lora_" in n)
        trainable, total = count(m)
        rows[name] = (trainable - lora - shared.numel() * shared.requires_grad, total - lora - shared.numel())
        if name == "LLM encoder":
            rows["  its embeddings"] = (shared.numel() * shared.requires_grad, shared.numel())
        rows[f"  {name}'s LoRA"] = (lora, lora)
    return rows


def print_counts(preset: str):
    """The per-part table and the two lines of DESIGN.md, counted on the meta device."""
    cfg = get_config(preset, pretrained=False)
    if not cfg.vocab_size:
        cfg = dataclasses.replace(cfg, vocab_size=1000)
        print(f"(tiny preset: counted with a {cfg.vocab_size}-token vocabulary; the real one comes from the data)")
    with torch.device("meta"):
        pre, fine = build_pretrain_model(cfg), build_translation_model(cfg)
    for title, model in (("pre-training", pre), ("fine-tuning", fine)):
        print(f"{title:<28}{'trainable':>14}{'total':>14}")
        for name, (t, n) in parts(model).items():
            print(f"  {name:<26}{t:>14,}{n:>14,}")
    pt, pn = count(pre)
    text_copy = count(pre.llm_encoder)[1] - sum(p.numel() for n, p in pre.llm_encoder.named_parameters() if "lora_" in n)
    ft, fn = count(fine)
    print(f"pretrain: trainable {pt:,} total {pn:,} paper-equivalent total {pn + text_copy:,}")
    print(f"finetune: trainable {ft:,} total {fn:,}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", action="store_true", help="print the parameter counts (Table 3)")
    ap.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    args = ap.parse_args()
    if args.count:
        print_counts(args.preset)
    else:
        ap.print_help()
