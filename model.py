"""The model of "Hierarchical Feature Alignment for Gloss-Free Sign Language Translation" (Fig. 1).

A sign video is encoded at three levels (paper §3.1):
  frames   -> VisualEncoder:   DINOv2 ViT-S/14 (+LoRA on its top 3 blocks), CLS -> Linear -> BatchNorm
  segments -> TemporalEncoder: local self-attention with RoPE, temporal downsampling after block 2,
                               Linear(512, 1024) last: the segment features Z
  video    -> mBART's encoder with LoRA
Pre-training (§3.2) adds the pseudo-gloss head, prototypes, a CLS token and the frozen text encoder; fine-tuning
(§3.3) the mapper and mBART's decoder (DESIGN.md "Architecture", "Differences from the authors' code").
Only torch is needed to import this file; transformers only where DINOv2 and mBART are built or used.
`python model.py --count [--preset paper|tiny]` prints Table 3's parameter counts, on the meta device.
"""
import argparse
import copy
import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

import lora
import tokenizer

try:  # optional: xformers' memory-efficient attention, CUDA only (paper §4.2)
    import xformers.ops as xops
except ImportError:
    xops = None

# facebook/dinov2-small's and facebook/mbart-large-cc25's architectures: the paper preset counted (and built) offline
DINOV2_SMALL = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                    mlp_ratio=4, patch_size=14, image_size=518, layerscale_value=1.0)
MBART_LARGE_CC25 = dict(d_model=1024, encoder_layers=12, decoder_layers=12, encoder_attention_heads=16,
                        decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096,
                        max_position_embeddings=1024, scale_embedding=False, dropout=0.1,
                        pad_token_id=1, bos_token_id=0, eos_token_id=2)


@dataclass
class Config:
    """All architecture choices (DESIGN.md "Architecture"); `paper` and `tiny` are the two presets."""
    dino: str = "facebook/dinov2-small"           # hub name or local folder (paper preset)
    dino_arch: dict = field(default_factory=lambda: dict(DINOV2_SMALL))
    mbart: str = "facebook/mbart-large-cc25"
    mbart_arch: dict = field(default_factory=lambda: dict(MBART_LARGE_CC25))
    pretrained: bool = True                       # load the weights above; False = random init
    freeze_llm: bool = True                       # mBART's base weights frozen (only its LoRA trains)
    image_size: int = 224                         # 224x224 -> 257 DINOv2 tokens
    dino_lora_blocks: int = 3                     # LoRA on the top 3 of 12 DINOv2 blocks (§4.2)
    dino_lora_r: int = 4                          # the visual LoRA: the authors' rank, alpha and dropout
    dino_lora_alpha: float = 4.0
    dino_lora_dropout: float = 0.1
    frame_dim: int = 512                          # D* of F
    temporal_layers: int = 4
    temporal_heads: int = 8
    temporal_mlp: int = 2048
    window: int = 7                               # local attention: offsets -3..+3
    downsample_after: int = 2                     # avg-pool time after this block
    temporal_dropout: float = 0.1                 # after the attention's projection and inside the MLP
    drop_path: float = 0.1                        # stochastic depth, rising from 0 (first block) to this
    layer_scale: float = 1e-5                     # initial layer scale of each block's attention branch
    llm_dim: int = 1024                           # D of Z and M: the temporal encoder ends in Linear(512, 1024)
    gloss_dim: int = 300                          # fastText prototypes, D' = 300
    gloss_dropout: float = 0.2                    # before the pseudo-gloss head's Linear(1024, 300)
    n_glosses: int = 2322                         # U, the pseudo-gloss vocabulary (§4.2: 2,322 on PHOENIX14T)
    lora_r: int = 16                              # the LLM's LoRA (§4.2)
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    vocab_size: int = 2172                        # trimmed mBART vocabulary on PHOENIX14T


PRESETS = {
    "paper": Config(),
    # the same classes, small enough for 2 CPU cores; its random mBART (no knowledge for LoRA to keep) trains whole
    "tiny": Config(
        dino="", mbart="", pretrained=False, freeze_llm=False, image_size=32, dino_lora_blocks=1,
        dino_arch=dict(DINOV2_SMALL, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=128, mlp_ratio=2, patch_size=8, image_size=32),
        mbart_arch=dict(MBART_LARGE_CC25, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                        decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
                        max_position_embeddings=512),
        frame_dim=64, temporal_layers=4, temporal_heads=4, temporal_mlp=128, llm_dim=64, lora_r=4, lora_alpha=8,
        vocab_size=0),
}


def get_config(preset: str, **overrides) -> Config:  # e.g. vocab_size from the tokenizer
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (--preset): choose one of {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[preset], **overrides)


def requires_grad(module: nn.Module) -> bool:
    """Whether anything in `module` trains; frozen modules run without autograd."""
    return any(p.requires_grad for p in module.parameters())


# Frame level: the visual encoder (§3.1, "Visual Encoder")

class VisualEncoder(nn.Module):
    """DINOv2 with LoRA on its top blocks; CLS -> Linear -> BatchNorm over the valid frames: F [B,T*,D*]."""

    def __init__(self, dino: nn.Module, cfg: Config):
        super().__init__()
        self.dino = dino.requires_grad_(False)
        for block in dino.encoder.layer[-cfg.dino_lora_blocks:]:
            lora.add_visual_lora(block, cfg.dino_lora_r, cfg.dino_lora_alpha, cfg.dino_lora_dropout)
        self.n_frozen = len(dino.encoder.layer) - cfg.dino_lora_blocks
        self.proj = nn.Linear(dino.config.hidden_size, cfg.frame_dim)
        self.norm = nn.BatchNorm1d(cfg.frame_dim)   # over the valid frames only (under torchrun: harness/parallel.py)

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


# Segment level: the temporal encoder (§3.1, "Temporal Encoder")

def sinusoidal_positions(T: int, dim: int, device=None):
    """Absolute position embedding [T, dim] (Vaswani et al.): sin at even, cos at odd features, frequency
    10000^(-2i/dim); added to the input besides RoPE, as the authors' code does."""
    freq = torch.exp(torch.arange(0, dim, 2, device=device) * (-math.log(10000.0) / dim))    # [dim/2]
    angle = torch.arange(T, device=device)[:, None] * freq                                    # [T, dim/2]
    return torch.stack([angle.sin(), angle.cos()], dim=-1).flatten(1)                         # [T, dim]


def rope(x, base: float = 10000.0):
    """Rotary position embedding (Su et al.) on x [B, H, T, d]: the interleaved pair (x_2i, x_2i+1) of step t
    rotates by t * base^(-2i/d), the pairing of the authors' code."""
    T, d = x.shape[-2], x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d)       # [d/2]
    angle = torch.arange(T, device=x.device, dtype=torch.float32)[:, None] * theta           # [T, d/2]
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., 0::2], x[..., 1::2]                                                      # [B, H, T, d/2]
    return torch.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).flatten(-2)


def local_attention_mask(mask, window: int):
    """[B, 1, T, T] bool: query i may see key j iff |i - j| <= window // 2 and j is a valid step."""
    T = mask.shape[1]
    pos = torch.arange(T, device=mask.device)
    band = (pos[:, None] - pos[None, :]).abs() <= window // 2                     # [T, T]
    # a padded query sees the whole band so that its softmax is defined; its output is discarded
    keys = mask[:, None, :] | ~mask[:, :, None]                                  # [B, T, T]
    return (band & keys)[:, None]


class LocalSelfAttention(nn.Module):
    """Multi-head self-attention within a local window (size 7, §3.1), RoPE on q and k, key padding mask;
    dropout on the projected output, as the authors' code (no dropout on the attention weights)."""

    def __init__(self, dim: int, heads: int, window: int = 7, dropout: float = 0.0):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, mask):
        # x [B, T, D], mask [B, T] (True = valid) -> [B, T, D]
        B, T, D = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # [B,H,T,d]
        q, k = rope(q), rope(k)
        allowed = local_attention_mask(mask, self.window)                         # [B, 1, T, T]
        if xops is not None and x.is_cuda:
            y = xformers_attention(q, k, v, allowed)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.dropout(self.proj(y.transpose(1, 2).reshape(B, T, D)))


def xformers_attention(q, k, v, allowed):
    """The same attention through xformers' memory-efficient kernel (q, k, v [B, H, T, d])."""
    T = q.shape[2]
    bias = q.new_zeros(*q.shape[:3], T + -T % 8)[..., :T]     # xformers wants the bias' rows aligned to 8
    bias.masked_fill_(~allowed, float("-inf"))
    y = xops.memory_efficient_attention(*(t.transpose(1, 2) for t in (q, k, v)), attn_bias=bias)  # [B, T, H, d]
    return y.transpose(1, 2)


def drop_path(x, p: float, training: bool):
    """Stochastic depth (Huang et al.): drop a residual branch for whole videos with probability p."""
    if p == 0.0 or not training:
        return x
    survive = x.new_empty(x.shape[0], *(1,) * (x.dim() - 1)).bernoulli_(1 - p)   # [B, 1, ...]
    return x * survive / (1 - p)


class TemporalBlock(nn.Module):
    """Post-norm transformer block (LayerNorm after each residual add), as the authors': local attention whose
    output is scaled by one layer-scale vector (init 1e-5), then a GELU MLP; DropPath on both branches."""

    def __init__(self, dim: int, heads: int, mlp: int, window: int, dropout: float = 0.1,
                 drop_path: float = 0.0, layer_scale: float = 1e-5):
        super().__init__()
        self.attn = LocalSelfAttention(dim, heads, window, dropout)
        self.layer_scale = nn.Parameter(torch.full((dim,), layer_scale))
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.drop_path = drop_path

    def forward(self, x, mask):
        x = self.norm1(x + drop_path(self.layer_scale * self.attn(x, mask), self.drop_path, self.training))
        return self.norm2(x + drop_path(self.mlp(x), self.drop_path, self.training))


def downsample(x, mask):
    """avg_pool1d(kernel 3, stride 2, padding 1) over time: segment j averages steps 2j-1, 2j, 2j+1 (zeros
    outside the video) and is valid when one of them is, so a video of n steps has floor(n/2) + 1 segments
    (the authors' rule), whatever the batch's padding. Padded steps are zeroed first, so they never leak in."""
    x = x * mask[..., None]
    if x.shape[1] % 2 == 0:  # one more zero step, so that the longest video also gets its last segment
        x = F.pad(x, (0, 0, 0, 1))
    x = F.avg_pool1d(x.transpose(1, 2), kernel_size=3, stride=2, padding=1).transpose(1, 2)  # [B, T, D]
    n = mask.sum(1)                                                                              # [B]
    return x, torch.arange(x.shape[1], device=x.device)[None] < (n // 2 + 1)[:, None]


class TemporalEncoder(nn.Module):
    """Frames F [B,T*,D*] -> segments Z [B,T,D], T = floor(T*/2) + 1: sinusoidal positions, 4 local-attention
    blocks pooled after 2, then Linear(D*, D) to the LLM's width."""

    def __init__(self, cfg: Config):
        super().__init__()
        n = cfg.temporal_layers
        self.blocks = nn.ModuleList(
            TemporalBlock(cfg.frame_dim, cfg.temporal_heads, cfg.temporal_mlp, cfg.window, cfg.temporal_dropout,
                          drop_path=cfg.drop_path * i / max(1, n - 1), layer_scale=cfg.layer_scale)
            for i in range(n))
        self.out_proj = nn.Linear(cfg.frame_dim, cfg.llm_dim)
        self.downsample_after, self.checkpoint = cfg.downsample_after, None  # --checkpointing: torch's checkpoint
        # the authors' initialisation: weights N(0, 0.02), biases 0, and the attention's output projection
        # N(0, 0.02 / sqrt(2 n)) as in GPT-2 (two residual branches per block)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        for block in self.blocks:
            nn.init.normal_(block.attn.proj.weight, std=0.02 / math.sqrt(2 * n))

    def forward(self, x, mask):
        x = x + sinusoidal_positions(x.shape[1], x.shape[2], x.device).to(x.dtype)
        for i, block in enumerate(self.blocks):
            if i == self.downsample_after:
                x, mask = downsample(x, mask)
            x = self.checkpoint(block, x, mask) if self.checkpoint else block(x, mask)  # recomputed in backward
        return self.out_proj(x) * mask[..., None], mask


class SignEncoder(nn.Module):
    """Frames to segment features Z [B, T, D]: the part shared by pre-training and fine-tuning."""

    def __init__(self, dino: nn.Module, cfg: Config):
        super().__init__()
        self.visual = VisualEncoder(dino, cfg)
        self.temporal = TemporalEncoder(cfg)

    def forward(self, frames, frame_mask):
        # -> Z [B, T, D] and its mask [B, T]
        with torch.set_grad_enabled(torch.is_grad_enabled() and requires_grad(self)):
            return self.temporal(self.visual(frames, frame_mask), frame_mask)


# Pre-training (§3.2): pseudo-gloss head and prototypes, LLM encoder with a CLS token, frozen text encoder

class FrozenTextEncoder(nn.Module):
    """§3.2's frozen text encoder psi_te: its own copy of the LLM encoder (no LoRA), always in eval mode."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        return super().train(False)

    @torch.no_grad()
    def forward(self, ids, mask):
        # ids, mask [B, L] -> L [B, L, D]
        return self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state


class PretrainModel(nn.Module):
    """Everything eqs. 1-5 need: Z' and the prototypes for the pseudo-gloss loss, M and L for the alignment loss."""

    def __init__(self, dino: nn.Module, llm_encoder: nn.Module, text_encoder: nn.Module, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.sign = SignEncoder(dino, cfg)
        # §3.2: Z -> Z' (dropout 0.2, Linear(1024, 300)); trainable prototypes P, fastText-initialised
        # (build_pretrain_model), and the fixed zero non-sign vector; eq. 2's fixed temperatures are the recipe's
        self.gloss_head = nn.Sequential(nn.Dropout(cfg.gloss_dropout), nn.Linear(cfg.llm_dim, cfg.gloss_dim))
        self.prototypes = nn.Parameter(torch.randn(cfg.n_glosses, cfg.gloss_dim))      # [U, 300]
        self.register_buffer("non_sign", torch.zeros(1, cfg.gloss_dim))
        # video-language alignment: a learnable CLS token before Z in the LLM encoder, the frozen text
        # encoder, and eq. 4's temperature as CLIP's learnable logit scale, 1 / 0.07 at the start
        self.cls = nn.Parameter(torch.randn(1, 1, cfg.llm_dim))
        self.llm_encoder = llm_encoder
        self.text_encoder = FrozenTextEncoder(text_encoder)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, frames, frame_mask, text_ids, text_mask):
        z, mask = self.sign(frames, frame_mask)                                        # Z [B, T, D], [B, T]
        x = torch.cat([self.cls.to(z.dtype).expand(len(z), -1, -1), z], dim=1)       # [B, 1 + T, D]
        video_mask = F.pad(mask, (1, 0), value=True)                                   # [B, 1 + T]
        m = self.llm_encoder(inputs_embeds=x, attention_mask=video_mask.long()).last_hidden_state  # M
        return dict(
            z_prime=self.gloss_head(z), mask=mask,                                     # Z' [B, T, 300], [B, T]
            prototypes=torch.cat([self.prototypes, self.non_sign]),                    # [U + 1, 300], zero last
            video=m, video_mask=video_mask,                                            # M [B, 1 + T, D]
            text=self.text_encoder(text_ids, text_mask), text_mask=text_mask,          # L [B, L, D]
            temperature=1 / self.logit_scale.exp())


# Translation (§3.3): the mapper and mBART's decoder

class TranslationModel(nn.Module):
    """Sign encoder -> mapper -> mBART encoder + decoder (§3.3, eq. 6); no CLS token."""

    def __init__(self, dino: nn.Module, mbart: nn.Module, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.sign = SignEncoder(dino, cfg)
        # Linear + LayerNorm + GELU: the mapper Table 3 counts (the text says "a single linear layer")
        self.mapper = nn.Sequential(nn.Linear(cfg.llm_dim, cfg.llm_dim), nn.LayerNorm(cfg.llm_dim), nn.GELU())
        nn.init.xavier_uniform_(self.mapper[0].weight, gain=nn.init.calculate_gain("relu"))  # the authors' init
        self.mbart = mbart

    def encode(self, frames, frame_mask):
        """Video-level features M [B, T, D] and their mask. `frames` [B, T*, 3, H, W], or the sign encoder's
        output Z [B, T, D] computed beforehand (fine-tuning stage 1 with --cache-features)."""
        if frames.dim() == 3:
            z, mask = frames, frame_mask
        else:
            z, mask = self.sign(frames, frame_mask)
        m = self.mbart.model.encoder(inputs_embeds=self.mapper(z), attention_mask=mask.long())
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
        from transformers.modeling_outputs import BaseModelOutput  # self.mbart is transformers' already
        m, mask = self.encode(frames, frame_mask)
        out = self.mbart.generate(encoder_outputs=BaseModelOutput(last_hidden_state=m), attention_mask=mask.long(),
                                  decoder_start_token_id=start_id, bos_token_id=start_id, eos_token_id=eos_id,
                                  pad_token_id=pad_id, forced_bos_token_id=None, num_beams=num_beams,
                                  max_new_tokens=max_new_tokens, do_sample=False)
        return out[:, 1:]


# Building the models from a preset

def load_dinov2(cfg: Config) -> nn.Module:
    """DINOv2 ViT-S/14 (facebook/dinov2-small) or, for random weights, the same class from cfg.dino_arch."""
    from transformers import Dinov2Config, Dinov2Model  # only here and in load_mbart: model.py imports with torch
    if cfg.pretrained:
        return Dinov2Model.from_pretrained(cfg.dino)
    with torch.random.fork_rng(devices=[]):  # random weights that stand in for a download: the same in every
        torch.manual_seed(0)                  # script, whatever the run's seed
        return Dinov2Model(Dinov2Config(**cfg.dino_arch))


def load_mbart(cfg: Config, keep_ids=None) -> nn.Module:
    """mBART-large-cc25 (MBartForConditionalGeneration), its vocabulary trimmed to `keep_ids` (DESIGN.md
    "Tokenizer"); or random weights."""
    from transformers import MBartConfig, MBartForConditionalGeneration
    if cfg.pretrained:
        mbart = MBartForConditionalGeneration.from_pretrained(cfg.mbart)
        if keep_ids is not None:
            tokenizer.trim_vocabulary(mbart, keep_ids)
        return mbart
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        return MBartForConditionalGeneration(MBartConfig(vocab_size=cfg.vocab_size, **cfg.mbart_arch))


def _add_llm_lora(module, cfg):
    if cfg.freeze_llm:
        module.requires_grad_(False)
    return lora.add_lora(module, ("q_proj", "v_proj"), cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout)


def build_pretrain_model(cfg: Config, prototypes: torch.Tensor = None, keep_ids=None) -> PretrainModel:
    """The pre-training model; `prototypes` [U, 300] (U = cfg.n_glosses) initialise P, random when None.
    The text encoder is a copy of the LLM encoder taken before LoRA (DESIGN.md "Architecture")."""
    encoder = load_mbart(cfg, keep_ids).model.encoder
    text_encoder = copy.deepcopy(encoder)
    net = PretrainModel(load_dinov2(cfg), _add_llm_lora(encoder, cfg), text_encoder, cfg)
    if prototypes is not None:
        if tuple(prototypes.shape) != tuple(net.prototypes.shape):
            raise ValueError(f"prototypes {tuple(prototypes.shape)}: expected [n_glosses, gloss_dim] = "
                             f"{list(net.prototypes.shape)} (without the non-sign row; set Config.n_glosses)")
        with torch.no_grad():
            net.prototypes.copy_(prototypes)
    return net


def build_translation_model(cfg: Config, keep_ids=None) -> TranslationModel:
    """The fine-tuning model: LoRA on mBART's encoder and on the decoder's self- and cross-attention."""
    return TranslationModel(load_dinov2(cfg), _add_llm_lora(load_mbart(cfg, keep_ids), cfg), cfg)


# Parameter counts (Table 3)

def count(module: nn.Module):
    """(trainable, total) parameters, each tensor once."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad), sum(p.numel() for p in module.parameters())


def build_counted(preset: str) -> tuple:
    """Both models of a preset on the meta device (no weights, no download), as Table 3 counts them: U = 2,322
    pseudo-glosses and a 2,172-token vocabulary (tiny: 100 and 1,000). -> (pre-training, fine-tuning)"""
    cfg = get_config(preset, pretrained=False)
    cfg = cfg if cfg.vocab_size else dataclasses.replace(cfg, vocab_size=1000, n_glosses=100)
    with torch.device("meta"):
        return build_pretrain_model(cfg), build_translation_model(cfg)


def print_counts(preset: str):
    """Table 3's four numbers: trainable and total parameters of both models (per part: python -m tools.table3)."""
    for name, net in zip(("pretrain", "finetune"), build_counted(preset)):
        print(f"{name}: trainable {count(net)[0]:,} total {count(net)[1]:,}")


if __name__ == "__main__":  # python model.py --count [--preset tiny]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", action="store_true", help="print the parameter counts (Table 3)")
    ap.add_argument("--preset", default="paper", choices=sorted(PRESETS), help="model size")
    print_counts(ap.parse_args().preset) if ap.parse_args().count else ap.print_help()
