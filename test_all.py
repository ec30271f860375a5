"""Tests: every component against an independent reference (peft, sacrebleu, dense attention, the
equations worked by hand), and the three stages end to end on a few synthetic videos.

    python -m pytest -q test_all.py
"""
import argparse
import contextlib
import copy
import csv
import dataclasses
import fcntl
import functools
import hashlib
import io
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

import data
import evaluate
import finetune
import lora
import losses
import metrics
import model
import pretrain
import pseudogloss
import tokenizer
import optim
from corpora import check, decode, files, how2sign, pack
from harness import card, checkpoint, cli, hf_folder, ledger, limits, logs, outdir, parallel, pseudogloss_cache, run
from tools import analysis, benchmark, memory, synthetic, table3, tagger_scores


# ----------------------------------------------------------------------------------------------
# The exercises, in the README's order: each function a student writes again, against its reference


def test_lora_matches_peft():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    net = nn.Sequential()
    net.q_proj = nn.Linear(12, 10)
    ref = peft.get_peft_model(net, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj"]))
    ours = lora.LoRALinear(nn.Linear(12, 10), r=4, alpha=8, dropout=0.0)
    ours.base.load_state_dict(net.q_proj.base_layer.state_dict())
    # B is zero at init (a no-op adapter): give both the same non-zero A and B
    a, b = torch.randn(4, 12), torch.randn(10, 4)
    with torch.no_grad():
        ours.lora_A.weight.copy_(a), ours.lora_B.weight.copy_(b)
        net.q_proj.lora_A["default"].weight.copy_(a), net.q_proj.lora_B["default"].weight.copy_(b)
    x = torch.randn(5, 12)
    torch.testing.assert_close(ours(x), ref(x))
    assert [n for n, p in ours.named_parameters() if p.requires_grad] == ["lora_A.weight", "lora_B.weight"]
    assert torch.count_nonzero(lora.LoRALinear(nn.Linear(3, 3), 2, 4, 0.1).lora_B.weight) == 0
    # the visual LoRA's A ~ N(0, 0.02)
    assert abs(lora.LoRALinear(nn.Linear(400, 500), 64, 64, 0.1, init_std=0.02).lora_A.weight.std() - 0.02) < 1e-3


def test_rope_rotation_and_relative_positions():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 8)
    torch.testing.assert_close(model.rope(x), rope_reference(x))
    # <rope(q)_m, rope(k)_n> depends only on m - n: with q, k the same at every step, scores are Toeplitz
    q, k = torch.randn(8).expand(1, 1, 10, 8), torch.randn(8).expand(1, 1, 10, 8)
    s = (model.rope(q) @ model.rope(k).transpose(-1, -2))[0, 0]
    for off in range(-9, 10):
        diag = torch.diagonal(s, off)
        torch.testing.assert_close(diag, diag[0].expand_as(diag))


def test_local_attention_matches_dense_and_is_local():
    torch.manual_seed(0)
    attn = model.LocalSelfAttention(16, heads=2, window=7, dropout=0.1).eval()
    x = torch.randn(2, 12, 16)
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[1, 8:] = False
    y = attn(x, mask)
    torch.testing.assert_close(y[mask], dense_local_attention(attn, x, mask)[mask])
    # locality: step 0 cannot see step 4 (offset 4 > 3), but sees step 3
    x2 = x.clone()
    x2[:, 4] += 10
    assert torch.allclose(attn(x2, mask)[:, 0], y[:, 0])
    x2 = x.clone()
    x2[:, 3] += 10
    assert not torch.allclose(attn(x2, mask)[:, 0], y[:, 0])
    # padding cannot leak in: garbage in the padded steps changes no valid output
    x3 = x.clone()
    x3[1, 8:] = 1e3 * torch.randn(4, 16)
    torch.testing.assert_close(attn(x3, mask)[1, :8], y[1, :8])
    # dropout acts on the projected output in training: some outputs exactly zero, the rest scaled by 1/0.9
    attn.train()
    torch.manual_seed(1)
    yt = attn(x, mask)
    dropped = yt == 0
    assert dropped.any() and torch.allclose(yt[~dropped], y[~dropped] / 0.9, atol=1e-6)


def test_pseudo_gloss_loss_by_hand():
    torch.manual_seed(0)
    B, T, U = 2, 4, 3
    z = torch.randn(B, T, 5)
    protos = torch.cat([torch.randn(U, 5), torch.zeros(1, 5)])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    labels = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    tt, tu = 0.3, 0.5

    def bce(e, h):  # the paper: BCE on the probability E-hat, U columns
        e = min(max(e, 1e-6), 1 - 1e-6)
        return -(h * math.log(e) + (1 - h) * math.log(1 - e))

    def authors(e, h):  # their code: BCE-with-logits on E-hat, i.e. BCE on sigmoid(E-hat), U + 1 columns
        p = 1 / (1 + math.exp(-min(max(e, 1e-8), 1 - 1e-8)))
        return -(h * math.log(p) + (1 - h) * math.log(1 - p))

    got = losses.pseudo_gloss_loss(z, mask, protos, labels, torch.tensor(tt), torch.tensor(tu))
    assert abs(got.item() - pseudo_gloss_by_hand(z, mask, protos, labels, tt, tu, U, bce)) < 1e-5
    got = losses.pseudo_gloss_loss(z, mask, protos, labels, torch.tensor(tt), torch.tensor(tu), variant="authors")
    assert abs(got.item() - pseudo_gloss_by_hand(z, mask, protos, labels, tt, tu, U + 1, authors)) < 1e-5
    with pytest.raises(ValueError, match="variant"):
        losses.pseudo_gloss_loss(z, mask, protos, labels, tt, tu, variant="sign2gpt")


def test_clip_loss_by_hand():
    torch.manual_seed(0)
    v, t, tau = torch.randn(4, 6), torch.randn(4, 6), 0.07
    sim = [[float(F.cosine_similarity(v[j], t[k], dim=0)) / tau for k in range(4)] for j in range(4)]
    v2t = sum(math.log(math.exp(sim[j][j]) / sum(math.exp(sim[j][k]) for k in range(4))) for j in range(4))
    t2v = sum(math.log(math.exp(sim[j][j]) / sum(math.exp(sim[k][j]) for k in range(4))) for j in range(4))
    assert abs(losses.clip_loss(v, t, tau).item() - (-(v2t + t2v) / 8)) < 1e-4  # eq. 4: -1/(2B) (...)


def test_one_cycle_schedule_matches_the_formula_by_hand():
    """§4.2's one-cycle schedule worked by hand: 5 warm-up steps of 13, peak lr 1. Warm-up is a half cosine from
    lr/25 = 0.04 up to 1 over steps 0..4, the decay a half cosine from 1 down to lr/25e4 over steps 4..12; Adam's
    beta1 runs the other way, 0.95 -> 0.85 -> 0.95."""
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = optim.one_cycle(opt, 5, 13, start_div=25, end_div=1e4, betas=(0.85, 0.95))
    lrs, betas = [], []
    for _ in range(13):
        lrs.append(opt.param_groups[0]["lr"])
        betas.append(opt.param_groups[0]["betas"][0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.04)
    assert lrs[2] == pytest.approx((0.04 + 1) / 2)          # half-way up the warm-up cosine
    assert lrs[4] == pytest.approx(1.0)                      # the peak at the end of warm-up
    assert lrs[8] == pytest.approx((1 + 4e-6) / 2)           # half-way down the decay
    assert lrs[12] == pytest.approx(4e-6)                    # lr / 25e4 at the last step
    assert max(lrs) == lrs[4] and lrs[:5] == sorted(lrs[:5]) and lrs[4:] == sorted(lrs[4:], reverse=True)
    assert betas[0] == pytest.approx(0.95) and betas[4] == pytest.approx(0.85) and betas[12] == pytest.approx(0.95)


def test_rouge_l_by_hand():
    # LCS("a b c d", "a c d e f") = "a c d": P = 3/4, R = 3/5, F = (1 + b^2) P R / (R + b^2 P), b = 1.2
    p, r, b2 = 3 / 4, 3 / 5, 1.2 ** 2
    f1 = (1 + b2) * p * r / (r + b2 * p)
    assert metrics.rouge_l(["a b c d", "x y"], ["a c d e f", "z"]) == pytest.approx(100 * (f1 + 0) / 2)
    assert metrics.rouge_l(["same words here"], ["same words here"]) == pytest.approx(100)
    assert metrics.lcs("a b a c b".split(), "b a b c".split()) == 3


def test_character_rouge_l_by_hand():
    # LCS over characters of 我喜欢吃苹果 / 我不喜欢苹果 is 我喜欢苹果 (5): P = R = 5/6, F = 5/6; of 你好 / 你们好吗 it
    # is 你好 (2): P = 1, R = 1/2, F = (1 + b^2) P R / (R + b^2 P), b = 1.2; whitespace is not a character
    b2 = 1.2 ** 2
    f2 = (1 + b2) * 1 * 0.5 / (0.5 + b2 * 1)
    got = metrics.rouge_l(["我 喜欢 吃 苹果", "你好"], ["我不喜欢苹果", "你们好吗"], lang="zh")
    assert got == pytest.approx(100 * (5 / 6 + f2) / 2)
    # over whitespace words the same pair shares nothing: Chinese is scored by character, not by the word split
    assert metrics.rouge_l(["我 喜欢 吃 苹果"], ["我不喜欢苹果"]) == 0
    assert metrics.scores(["你好"], ["你们好吗"], lang="zh")["rouge"] == pytest.approx(100 * f2)


def test_trim_vocabulary_keeps_outputs_for_kept_tokens():
    torch.manual_seed(0)
    cfg = model.get_config("tiny", vocab_size=60)
    full = model.load_mbart(cfg).eval()
    nn.init.normal_(full.final_logits_bias)
    keep = torch.tensor([0, 1, 2, 3, 7, 11, 20, 33, 41, 59])
    trimmed = tokenizer.trim_vocabulary(copy.deepcopy(full), keep)
    new_ids = torch.tensor([[4, 5, 8, 2], [6, 9, 2, 1]])  # kept tokens, in the trimmed numbering
    old_ids = keep[new_ids]
    ref = full(input_ids=old_ids, decoder_input_ids=old_ids).logits[..., keep]
    torch.testing.assert_close(trimmed(input_ids=new_ids, decoder_input_ids=new_ids).logits, ref)
    assert trimmed.model.shared.weight.shape[0] == 10 and trimmed.lm_head.weight is trimmed.model.shared.weight


def test_english_pseudogloss_rule_by_hand():
    en = functools.partial(pseudogloss.extract, lang="en")
    # clitics split; do before a verb, be, will and the future "going to" are auxiliaries; not is a particle
    assert en("Don't worry, it's going to be fine.") == ["worry", "it", "fine"]
    assert en("We'll need two cups of flour.") == ["we", "need", "two", "cup", "flour"]
    # do and have without a verb after them are lexical; "have to" is a modal; pronouns take the nominative
    assert en("What do you do with them?") == ["what", "you", "do", "they"]
    assert en("You have to keep them warm.") == ["you", "keep", "they", "warm"]
    # a demonstrative before a noun is a determiner, standing alone a pronoun; "going to the store" is "go"
    assert en("This knife is sharp. Do this slowly.") == ["knife", "sharp", "do", "this", "slowly"]
    assert en("I'm going to the store.") == ["i", "go", "store"]
    assert en("") == []


def test_chinese_pseudogloss_rule_by_hand():
    zh = functools.partial(pseudogloss.extract, lang="zh")
    assert zh("他是我的哥哥。") == ["他", "我", "哥哥"]  # copula 是 and particle 的 dropped
    assert zh("明天会下雨吗？") == ["明天", "下雨"]  # modal 会 before a verb, question particle 吗
    assert zh("我要一杯咖啡。") == ["我", "要", "一杯", "咖啡"]  # 要 without a verb is lexical; numeral + classifier
    assert zh("我不喜欢那个颜色。") == ["我", "喜欢", "颜色"]  # negation dropped; 那个 before a noun is a determiner
    assert zh("我要这个。") == ["我", "要", "这个"]  # standing alone, a pronoun
    assert zh("我买了10个苹果和WiFi。") == ["我", "买", "10个", "苹果", "wifi"]  # digits and Latin letters kept
    assert zh("") == []


# ----------------------------------------------------------------------------------------------
# The paper's other references: LoRA, eqs. 1-6 by hand, the encoders and models, Table 3, the metrics


def tiny_dino_block():
    torch.manual_seed(0)
    cfg = model.get_config("tiny")
    return model.load_dinov2(cfg).encoder.layer[0].eval()


def test_fused_qkv_visual_lora_matches_peft_on_a_fused_layer():
    peft = pytest.importorskip("peft")
    block = tiny_dino_block()
    original = copy.deepcopy(block)
    lora.add_visual_lora(block, r=4, alpha=4, dropout=0.0)
    C, H = 64, 4
    x = torch.randn(3, 5, C)
    # B = 0: the fused attention computes exactly what transformers' Dinov2 block computes
    torch.testing.assert_close(block(x), original(x))
    trainable = {n: tuple(p.shape) for n, p in block.named_parameters() if p.requires_grad}
    assert trainable == {"attention.qkv.lora_A.weight": (4, C), "attention.qkv.lora_B.weight": (3 * C, 4),
                         "attention.o_proj.lora_A.weight": (4, C), "attention.o_proj.lora_B.weight": (C, 4),
                         "mlp.fc1.lora_A.weight": (4, C), "mlp.fc1.lora_B.weight": (128, 4),
                         "mlp.fc2.lora_A.weight": (4, 128), "mlp.fc2.lora_B.weight": (C, 4)}
    # reference: peft on one fused Linear(C, 3C) holding [W_q; W_k; W_v], and on the output projection
    a = original.attention
    ref = nn.Sequential()
    ref.qkv = nn.Linear(C, 3 * C)
    ref.o_proj = copy.deepcopy(a.o_proj)
    with torch.no_grad():
        ref.qkv.weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        ref.qkv.bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
    ref = peft.get_peft_model(ref, peft.LoraConfig(r=4, lora_alpha=4, lora_dropout=0.0,
                                                   target_modules=["qkv", "o_proj"]))
    for name in ("qkv", "o_proj"):
        ours, theirs = getattr(block.attention, name), getattr(ref.base_model.model, name)
        with torch.no_grad():
            ours.lora_A.weight.normal_(std=0.1), ours.lora_B.weight.normal_(std=0.1)
            theirs.lora_A["default"].weight.copy_(ours.lora_A.weight)
            theirs.lora_B["default"].weight.copy_(ours.lora_B.weight)
    q, k, v = ref.base_model.model.qkv(x).split(C, dim=-1)                     # one A, one B for all three
    heads = lambda t: t.view(3, 5, H, C // H).transpose(1, 2)                  # [N, H, L, d]
    w = (heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(C // H)).softmax(-1)
    y = ref.base_model.model.o_proj((w @ heads(v)).transpose(1, 2).reshape(3, 5, C))
    torch.testing.assert_close(block.attention(x)[0], y)


def pseudo_gloss_by_hand(z, mask, protos, labels, tt, tu, columns, loss):
    """Eqs. 1-3 per video and prototype, then `loss(e, h)` averaged over the videos and `columns` prototypes."""
    B, T = mask.shape
    U = len(protos) - 1
    total = 0.0
    for b in range(B):
        steps = [t for t in range(T) if mask[b, t]]
        s = [[0.0 if u == U else float(z[b, t] @ protos[u] / (z[b, t].norm() * protos[u].norm()))  # eq. 1
              for u in range(U + 1)] for t in range(T)]
        for u in range(columns):
            time_den = sum(math.exp(s[t][u] / tt) for t in steps)
            e = sum(math.exp(s[t][u] / tt) / time_den  # eq. 2, over time
                    * math.exp(s[t][u] / tu) / sum(math.exp(s[t][w] / tu) for w in range(U + 1))  # over prototypes
                    for t in steps)  # eq. 3
            total += loss(e, float(labels[b, u]) if u < U else 0.0)
    return total / (B * columns)


def test_masked_mean_and_eq5_and_eq6():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert losses.masked_mean(x, torch.tensor([[True, True, False]])).item() == 2.0
    torch.manual_seed(0)
    video_mask = torch.tensor([[True, True, True, False], [True, True, True, True]])  # CLS + 3 segments
    out = dict(video=torch.randn(2, 4, 4), video_mask=video_mask, mask=video_mask[:, 1:], text=torch.randn(2, 5, 4),
               text_mask=torch.ones(2, 5, dtype=torch.bool), temperature=0.1, z_prime=torch.randn(2, 3, 8),
               prototypes=torch.cat([torch.randn(3, 8), torch.zeros(1, 8)]),
)
    labels = torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    total, align, psp = losses.pretrain_loss(out, labels, 0.1, lambda_psp=0.5)
    torch.testing.assert_close(total, align + 0.5 * psp)
    pooled = torch.stack([out["video"][0, :3].mean(0), out["video"][1].mean(0)])  # M~: CLS and valid segments
    torch.testing.assert_close(align, losses.clip_loss(pooled, out["text"].mean(1), 0.1))
    _, _, psp_authors = losses.pretrain_loss(out, labels, 0.1, psp_variant="authors")
    torch.testing.assert_close(psp_authors, losses.pseudo_gloss_loss(out["z_prime"], out["mask"], out["prototypes"],
                                                                     labels, 0.1, 0.1, variant="authors"))
    # eq. 6 by hand: mean over non-pad tokens of -log p(reference), no smoothing
    logits, labels = torch.randn(1, 3, 5), torch.tensor([[2, 4, 1]])
    logp = logits.log_softmax(-1)
    ref = -(logp[0, 0, 2] + logp[0, 1, 4]) / 2
    torch.testing.assert_close(losses.translation_loss(logits, labels, pad_id=1, label_smoothing=0.0), ref)


def rope_reference(x, base=10000.0):
    """RoPE as complex rotation: the interleaved pair (x_2i, x_2i+1) is one complex number turned by
    t * base^(-2i/d)."""
    T, d = x.shape[-2], x.shape[-1]
    out = torch.empty_like(x)
    for t in range(T):
        for i in range(d // 2):
            angle = t * base ** (-2 * i / d)
            c = torch.complex(x[..., t, 2 * i], x[..., t, 2 * i + 1]) * complex(math.cos(angle), math.sin(angle))
            out[..., t, 2 * i], out[..., t, 2 * i + 1] = c.real, c.imag
    return out


def dense_local_attention(attn, x, mask):
    """Reference: a plain softmax over the allowed keys, written out per query, with the module's weights."""
    B, T, D = x.shape
    H, d = attn.heads, D // attn.heads
    q, k, v = attn.qkv(x).view(B, T, 3, H, d).permute(2, 0, 3, 1, 4)
    q, k = rope_reference(q), rope_reference(k)
    out = torch.zeros(B, H, T, d)
    for b in range(B):
        for i in range(T):
            keys = [j for j in range(T) if abs(i - j) <= attn.window // 2 and mask[b, j]]
            if not mask[b, i]:
                continue
            w = torch.softmax(torch.einsum("hd,hkd->hk", q[b, :, i], k[b, :, keys]) / math.sqrt(d), dim=-1)
            out[b, :, i] = torch.einsum("hk,hkd->hd", w, v[b, :, keys])
    return attn.proj(out.transpose(1, 2).reshape(B, T, D))


@pytest.mark.skipif(not torch.cuda.is_available() or model.xops is None, reason="xformers needs CUDA")
def test_xformers_attention_matches_sdpa():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 37, 32, device="cuda") for _ in range(3))
    mask = torch.ones(2, 37, dtype=torch.bool, device="cuda")
    mask[0, 30:] = False
    allowed = model.local_attention_mask(mask, 7)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    torch.testing.assert_close(model.xformers_attention(q, k, v, allowed)[mask[:, None].expand(2, 4, 37)],
                               ref[mask[:, None].expand(2, 4, 37)], atol=1e-4, rtol=1e-4)


def test_post_norm_block_with_layer_scale_matches_written_out_block():
    torch.manual_seed(0)
    block = model.TemporalBlock(16, heads=2, mlp=32, window=7, dropout=0.1, drop_path=0.1).eval()
    assert torch.equal(block.layer_scale, torch.full((16,), 1e-5))
    nn.init.normal_(block.layer_scale)
    x = torch.randn(2, 9, 16)
    mask = torch.ones(2, 9, dtype=torch.bool)
    mask[1, 6:] = False
    # written out: x1 = LN(x + s * Attn(x)), x2 = LN(x1 + W2 GELU(W1 x1)) -- post-norm, layer scale on attention only
    fc1, fc2 = block.mlp[0], block.mlp[3]
    x1 = F.layer_norm(x + block.layer_scale * dense_local_attention(block.attn, x, mask), (16,),
                      block.norm1.weight, block.norm1.bias)
    x2 = F.layer_norm(x1 + F.linear(F.gelu(F.linear(x1, fc1.weight, fc1.bias)), fc2.weight, fc2.bias), (16,),
                      block.norm2.weight, block.norm2.bias)
    torch.testing.assert_close(block(x, mask)[mask], x2[mask])
    # DropPath: each video keeps or drops the whole branch, kept ones scaled by 1 / (1 - p)
    torch.manual_seed(0)
    y = model.drop_path(torch.ones(2000, 3, 4), 0.25, training=True)
    per_video = y.flatten(1)
    kept = per_video[:, 0] > 0
    assert (per_video == per_video[:, :1]).all() and torch.allclose(per_video[kept, 0], torch.tensor(1 / 0.75))
    assert abs(kept.float().mean() - 0.75) < 0.03
    assert torch.equal(model.drop_path(torch.ones(5, 2), 0.25, training=False), torch.ones(5, 2))


def test_temporal_encoder_init_and_drop_path_schedule():
    torch.manual_seed(0)
    enc = model.TemporalEncoder(model.get_config("paper", pretrained=False))
    assert [b.drop_path for b in enc.blocks] == pytest.approx([0.0, 0.1 / 3, 0.2 / 3, 0.1])
    assert abs(enc.blocks[0].mlp[0].weight.std() - 0.02) < 5e-4 and abs(enc.out_proj.weight.std() - 0.02) < 5e-4
    assert abs(enc.blocks[0].attn.proj.weight.std() - 0.02 / math.sqrt(8)) < 5e-4
    assert all(torch.count_nonzero(m.bias) == 0 for m in enc.modules() if isinstance(m, nn.Linear))
    assert enc.out_proj.out_features == 1024 and len(enc.blocks) == 4


def test_temporal_encoder_downsamples_and_ignores_padding():
    torch.manual_seed(0)
    enc = model.TemporalEncoder(model.get_config("tiny")).eval()
    for block in enc.blocks:  # layer scale 1e-5 would hide any leak: make the blocks count
        nn.init.ones_(block.layer_scale)
    x = torch.randn(2, 11, 64)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, 8:] = False
    z, zmask = enc(x, mask)
    assert z.shape == (2, 6, 64) and zmask.sum(1).tolist() == [6, 5]  # floor(n/2) + 1 segments: n = 11, 8
    assert (z[1, 5:] == 0).all()
    alone, alone_mask = enc(x[1:, :8], mask[1:, :8])                  # the same video without batch padding
    assert alone.shape[1] == 5 and alone_mask.all()
    torch.testing.assert_close(z[1, :5], alone[0])
    garbage = x.clone()
    garbage[1, 8:] = 1e3
    torch.testing.assert_close(enc(garbage, mask)[0][1], z[1])
    # the pooling, by hand: segment j averages frames 2j-1, 2j, 2j+1 (zero outside the video), over 3
    pooled, pmask = model.downsample(x[1:], mask[1:])
    padded = F.pad(x[1, :8], (0, 0, 1, 2))
    torch.testing.assert_close(pooled[0, :5], torch.stack([padded[2 * j: 2 * j + 3].sum(0) / 3 for j in range(5)]))
    assert pmask.sum().item() == 5


def sign_encoder_parameters(net, cfg):
    """The trainable parameter names of the sign encoder (visual LoRA, frame head, temporal encoder), written out."""
    top = f"sign.visual.dino.encoder.layer.{cfg.dino_arch['num_hidden_layers'] - 1}."
    names = {top + f"{m}.lora_{ab}.weight" for m in ("attention.qkv", "attention.o_proj", "mlp.fc1", "mlp.fc2")
             for ab in "AB"}
    names |= {f"sign.visual.{m}.{w}" for m in ("proj", "norm") for w in ("weight", "bias")}
    for i in range(cfg.temporal_layers):
        names |= {f"sign.temporal.blocks.{i}.{m}.{w}"
                  for m in ("attn.qkv", "attn.proj", "norm1", "mlp.0", "mlp.3", "norm2")
                  for w in ("weight", "bias")} | {f"sign.temporal.blocks.{i}.layer_scale"}
    return names | {"sign.temporal.out_proj.weight", "sign.temporal.out_proj.bias"}


def llm_lora_parameters(prefix, layers, attentions=("self_attn",)):
    return {f"{prefix}.layers.{i}.{a}.{p}.lora_{ab}.weight" for i in range(layers) for a in attentions
            for p in ("q_proj", "v_proj") for ab in "AB"}


def test_pretrain_model_trains_exactly_lora_and_new_layers():
    cfg = model.get_config("tiny", vocab_size=40, freeze_llm=True, n_glosses=6)  # the paper's freezing, tiny widths
    init = torch.randn(6, 300)
    net = model.build_pretrain_model(cfg, init)
    torch.testing.assert_close(net.prototypes.detach(), init)
    frames, fmask, ids, tmask = tiny_batch()
    seen = []
    first_lora_block = net.sign.visual.dino.encoder.layer[net.sign.visual.n_frozen]
    first_lora_block.register_forward_pre_hook(lambda m, args: seen.append(args[0].requires_grad))
    make_every_weight_count(net)
    net.train()
    assert not net.text_encoder.training and not net.text_encoder.encoder.training  # always eval: no dropout
    out = net(frames, fmask, ids, tmask)
    assert out["z_prime"].shape == (3, 5, 300) and out["mask"].sum(1).tolist() == [5, 4, 2]  # floor(n/2) + 1
    assert out["video"].shape == (3, 6, 64) and out["video_mask"][:, 0].all()              # CLS first
    assert torch.equal(out["video_mask"][:, 1:], out["mask"])
    assert out["prototypes"].shape == (7, 300) and not out["prototypes"][-1].any()
    loss, _, _ = losses.pretrain_loss(out, (torch.rand(3, 6) > 0.5).float(), 0.1)
    loss.backward()
    assert seen == [False]  # the frozen DINOv2 blocks kept no graph
    expected = sign_encoder_parameters(net, cfg) | llm_lora_parameters("llm_encoder", 2)
    expected |= {"gloss_head.1.weight", "gloss_head.1.bias", "prototypes", "cls", "logit_scale"}
    assert {n for n, p in net.named_parameters() if p.requires_grad} == expected
    assert grads(net) == expected
    # the prototypes learn, the zero non-sign vector is a buffer and stays zero after a step
    assert "non_sign" in dict(net.named_buffers()) and "non_sign" not in dict(net.named_parameters())
    before = net.prototypes.detach().clone()
    torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=1.0).step()
    assert not torch.equal(net.prototypes, before) and not net.non_sign.any()
    assert pretrain.Recipe().tau == 0.1 and not any("tau" in n for n, _ in net.named_buffers())  # §4.2: the recipe's
    # the text encoder is its own frozen copy: L does not depend on the LLM encoder or its LoRA
    with torch.no_grad():
        for p in net.llm_encoder.parameters():
            p.normal_()
    torch.testing.assert_close(net(frames, fmask, ids, tmask)["text"], out["text"])
    # also where the tiny preset trains mBART's base weights
    tiny = model.build_pretrain_model(model.get_config("tiny", vocab_size=40))
    assert model.requires_grad(tiny.llm_encoder) and not model.requires_grad(tiny.text_encoder)
    with pytest.raises(ValueError, match="n_glosses"):
        model.build_pretrain_model(cfg, torch.randn(5, 300))


def test_translation_model_trains_exactly_lora_and_new_layers():
    cfg = model.get_config("tiny", vocab_size=40, freeze_llm=True)
    net = model.build_translation_model(cfg)
    frames, fmask, ids, tmask = tiny_batch()
    make_every_weight_count(net)
    logits = net(frames, fmask, ids, tmask)
    assert logits.shape == (3, 7, 40)
    losses.translation_loss(logits, ids, pad_id=1).backward()
    expected = sign_encoder_parameters(net, cfg) | {f"mapper.{i}.{w}" for i in (0, 1) for w in ("weight", "bias")}
    expected |= llm_lora_parameters("mbart.model.encoder", 2)
    expected |= llm_lora_parameters("mbart.model.decoder", 2, ("self_attn", "encoder_attn"))
    assert {n for n, p in net.named_parameters() if p.requires_grad} == expected
    assert grads(net) == expected
    assert [type(m) for m in net.mapper] == [nn.Linear, nn.LayerNorm, nn.GELU]
    net.eval()
    hyp = net.translate(frames, fmask, start_id=4, eos_id=2, pad_id=1, num_beams=2, max_new_tokens=5)
    assert hyp.shape[0] == 3 and hyp.shape[1] <= 5


def checkpointed_step(kind, checkpointed: bool):
    """One float64 forward and backward of the tiny model with LoRA on mBART (the paper's freezing), dropout and
    DropPath on, seeded alike. -> (loss, gradients by name, forward calls of watched attention modules)"""
    cfg = model.get_config("tiny", vocab_size=40, freeze_llm=True, n_glosses=6)
    frames, fmask, ids, tmask = tiny_batch()
    torch.manual_seed(0)
    net = (model.build_pretrain_model if kind == "pretrain" else model.build_translation_model)(cfg)
    make_every_weight_count(net)
    net = run.use_checkpointing(net.double()) if checkpointed else net.double()
    optim.train_mode(net)
    llm = net.llm_encoder if kind == "pretrain" else net.mbart.model.encoder
    dino = net.sign.visual.dino.encoder.layer
    watched = {"frozen dino": dino[0].attention, "top dino": dino[-1].attention, "llm": llm.layers[1].self_attn,
               **{f"temporal {i}": b.attn for i, b in enumerate(net.sign.temporal.blocks)}}
    watched |= {"text": net.text_encoder.encoder.layers[0].self_attn} if kind == "pretrain" else \
        {"decoder": net.mbart.model.decoder.layers[0].self_attn}
    calls = dict.fromkeys(watched, 0)
    for name, m in watched.items():
        m.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    torch.manual_seed(1)
    if kind == "pretrain":
        out = net(frames.double(), fmask, ids, tmask)
        loss = losses.pretrain_loss(out, (torch.rand(3, 6) > 0.5).double(), 0.1)[0]
    else:
        loss = losses.translation_loss(net(frames.double(), fmask, ids, tmask), ids, pad_id=1)
    loss.backward()
    return loss.detach(), {n: p.grad for n, p in net.named_parameters() if p.grad is not None}, calls


@pytest.mark.parametrize("kind", ["pretrain", "translation"])
def test_activation_checkpointing_gives_the_same_loss_and_gradients(kind):
    """--checkpointing (run.use_checkpointing) in float64: the same loss and gradients as without it, dropout
    included (non-reentrant checkpointing restores the random state when it recomputes). The checkpointed
    modules run twice (forward, and again in backward); DINOv2's frozen block and the frozen text encoder once."""
    loss, grad, calls = checkpointed_step(kind, False)
    loss_c, grad_c, calls_c = checkpointed_step(kind, True)
    assert set(calls.values()) == {1}
    assert calls_c == {k: 1 if k in ("frozen dino", "text") else 2 for k in calls}
    assert abs(loss - loss_c) <= 1e-12
    assert grad.keys() == grad_c.keys() and len(grad) > 40 and grad["cls" if kind == "pretrain" else
                                                                     "mapper.0.weight"].dtype == torch.float64
    assert max((grad[n] - grad_c[n]).abs().max().item() for n in grad) <= 1e-12


def test_cached_sign_features_give_the_same_translation_logits():
    cfg = model.get_config("tiny", vocab_size=40)
    net = model.build_translation_model(cfg).eval()
    frames, fmask, ids, tmask = tiny_batch()
    s, mask = net.sign(frames, fmask)
    items = [{"features": s[i, :n], "name": str(i), "translation": ""} for i, n in enumerate(mask.sum(1).tolist())]
    cached = run.collate_features(items)
    torch.testing.assert_close(net(cached["frames"], cached["frame_mask"], ids, tmask), net(frames, fmask, ids, tmask))


def test_paper_parameter_counts_match_table_3(capsys):
    table3.print_parts("paper")
    lines = capsys.readouterr().out.strip().splitlines()
    # Table 3, all four numbers (U = 2,322 pseudo-glosses, 2,172-token vocabulary)
    assert lines[-2:] == ["pretrain: trainable 15,200,325 total 346,123,973",
                          "finetune: trainable 16,819,712 total 395,924,608"]
    rows = {line[:32].strip(): line[32:].split() for line in lines[1:-2]}
    lora_by_hand = 3 * 4 * ((384 + 3 * 384) + (384 + 384) + (384 + 1536) + (1536 + 384))  # qkv, o, fc1, fc2
    assert rows["prototypes"] == [f"{300 * 2322:,}"] * 2 and rows["image encoder LoRA"] == [f"{lora_by_hand:,}"] * 2
    assert rows["text encoder (frozen copy)"][0] == "0" and rows["LLM encoder LoRA"] == [f"{12 * 2 * 16 * 2048:,}"] * 2


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="--preset"):
        model.get_config("huge")


def test_bleu_matches_sacrebleu_and_hand_count():
    hyps = ["am montag regnet es im norden", "morgen scheint die sonne"]
    refs = ["am montag regnet es im süden", "morgen scheint im süden die sonne"]
    got = metrics.bleu(hyps, refs)
    assert got["bleu4"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    # BLEU-1 by hand: 9 of the 10 hypothesis words match; brevity penalty exp(1 - 12/10)
    assert got["bleu1"] == pytest.approx(100 * 9 / 10 * math.exp(1 - 12 / 10))
    assert got["bleu1"] > got["bleu2"] > got["bleu3"] > got["bleu4"] > 0


def test_authors_scoring_row_by_hand():
    tok = tokenizer.build_sentencepiece(SENTENCES * 3)  # no "q" in the training text: <unk>, dropped in decoding
    hyps, refs = ["am donnerstag regnet es"], ["am donnerstag regnet es qqq"]
    assert metrics.authors_references(refs, tok)[0].split() == ["am", "donnerstag", "regnet", "es"]
    # raw: every n-gram of the 4 hypothesis words matches; brevity penalty exp(1 - 5/4)
    assert metrics.scores(hyps, refs)["bleu4"] == pytest.approx(100 * math.exp(1 - 5 / 4))
    # " ." appended: 5/5 unigrams, 3/4 bigrams ("es ." is not in the reference), 2/3 trigrams, 1/2 4-grams,
    # BP exp(1 - 6/5)
    period = metrics.scores([h + " ." for h in hyps], [r + " ." for r in refs])["bleu4"]
    assert period == pytest.approx(100 * math.exp(1 - 6 / 5) * (3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    # the authors' scoring: " ." appended to the hypothesis and to the decoded reference "am donnerstag regnet es"
    got = metrics.authors_scores(hyps, refs, tok)
    assert got["bleu4"] == pytest.approx(100) and got["bleu1"] == pytest.approx(100)
    assert got["rouge"] == pytest.approx(100)


def test_bleu_per_language_against_sacrebleu_and_by_hand():
    hyps, refs = ["我喜欢猫。", "今天天气很好"], ["我喜欢狗。", "今天的天气很好"]
    got = metrics.bleu(hyps, refs, lang="zh")
    assert got["bleu4"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh").score)
    # by hand, characters as tokens: sentence 1 matches 4 of 5 unigrams and 2 of 4 bigrams (我喜 喜欢); sentence 2
    # all 6 unigrams and 4 of 5 bigrams (今天 天天 天气 气很 很好 against 今天 天的 的天 天气 气很 很好: all but 天天);
    # hypotheses 11 characters, references 12: brevity penalty exp(1 - 12/11)
    p1, p2, bp = (4 + 6) / 11, (2 + 4) / 9, math.exp(1 - 12 / 11)
    assert got["bleu1"] == pytest.approx(100 * bp * p1)
    assert got["bleu2"] == pytest.approx(100 * bp * math.sqrt(p1 * p2))
    # 13a on the cased text for English: "The" is not "the"; German is scored as before
    assert metrics.bleu(["The cat sat"], ["the cat sat"], lang="en")["bleu1"] == pytest.approx(100 * 2 / 3)
    assert metrics.bleu(["a b c d"], ["a b c e"]) == metrics.bleu(["a b c d"], ["a b c e"], lang="de")
    assert "zh" in metrics.scoring_note("zh") and "13a" in metrics.scoring_note("en")


# ----------------------------------------------------------------------------------------------
# The data: pseudo-glosses, the tokenizer, PHOENIX14T as released, the other layouts, decoding, packs


def test_extract_pseudoglosses():
    assert pseudogloss.extract("am donnerstag regnet es im norden") == ["donnerstag", "regnen", "es", "norden"]
    # articles, prepositions, auxiliaries and modals dropped; adjective, adverb, number and noun kept
    assert pseudogloss.extract("morgen scheint im süden die sonne bei zwanzig grad") == \
        ["morgen", "scheinen", "süden", "sonne", "zwanzig", "grad"]
    assert pseudogloss.extract("es kann kräftige gewitter geben") == ["es", "kräftig", "gewitter", "geben"]
    assert pseudogloss.extract("") == []


def test_default_tagger_on_gold_set():
    # tools/gold/de.tsv (hand-checked, DESIGN.md "Pseudo-glosses"): micro P/R/F1 with multiset matching,
    # scored here by removing each matched gloss from a copy of the gold list
    pairs = []
    for line in (Path(__file__).parent / "tools" / "gold" / "de.tsv").read_text(encoding="utf-8").split("\n"):
        if line and line[0] != "#":
            sentence, glosses = line.split("\t")
            pairs.append((sentence, glosses.split(" ")))
    assert len(pairs) >= 40 and all(s == s.lower() for s, _ in pairs)
    hit = n_got = n_gold = 0
    for sentence, gold in pairs:
        got, left = pseudogloss.extract(sentence), list(gold)
        for g in got:
            if g in left:
                left.remove(g)
                hit += 1
        n_got, n_gold = n_got + len(got), n_gold + len(gold)
    precision, recall = hit / n_got, hit / n_gold
    f1 = 2 * precision * recall / (precision + recall)
    assert f1 >= 0.95, (precision, recall, f1)
    assert tagger_scores.gold_scores(pairs) == pytest.approx((precision, recall, f1))


def test_lower_case_weather_nouns_keep_their_lemma():
    # HanTa's case model read these lower-case nouns as rege, hageln, blitzen, donnern, glätten, Schau
    cases = {"am freitag im süden regen und im norden schnee": ["regen", "schnee"],
             "örtlich gewitter mit hagel blitz und donner": ["hagel", "blitz", "donner"],
             "auf den straßen besteht gefahr durch glätte": ["glätte"],
             "heute abend dichte wolken mit schauern": ["abend", "wolke", "schauer"],
             "in der nacht nebel und sturm an der küste": ["nacht", "nebel", "sturm"]}
    for sentence, nouns in cases.items():
        got = pseudogloss.extract(sentence)
        assert all(n in got for n in nouns), (sentence, got)
        assert not {"rege", "hageln", "blitzen", "donnern", "glätten", "schau"} & set(got), (sentence, got)
    shares = tagger_scores.weather_shares(["regen und schauern", "viel regen", "stürme und blitze"])
    assert shares["regen"] == (2, 2) and shares["schauer"] == (1, 1) and shares["sturm"][1] == 1
    assert shares["blitz"][1] == 1 and shares["hagel"] == (0, 0)


def test_a_damaged_pseudogloss_cache_is_named_and_rebuilt(corpus, tmp_path, capsys):
    cache_dir = tmp_path / "cache"
    pg = pseudogloss_cache.pseudoglosses(corpus, cache_dir=cache_dir, dim=8)
    cache = cache_dir / "pseudoglosses-train-dev-test.pt"
    good = cache.read_bytes()
    capsys.readouterr()
    for damage in (lambda: cache.write_bytes(good[:len(good) // 2]), lambda: cache.write_bytes(b""),
                   lambda: torch.save({"key": argparse.Namespace(a=1)}, cache),
                   lambda: torch.save({"key": torch.load(io.BytesIO(good), weights_only=True)["key"]}, cache)):
        damage()
        again = pseudogloss_cache.pseudoglosses(corpus, cache_dir=cache_dir, dim=8)
        assert f"pseudo-gloss cache '{cache}' is damaged" in capsys.readouterr().out
        assert again.vocab == pg.vocab and again.labels == pg.labels
        assert torch.equal(again.prototypes, pg.prototypes)
        assert torch.load(cache, weights_only=True)["vocab"] == pg.vocab            # rebuilt in place


def test_shared_pseudogloss_cache_is_keyed_reused_and_the_same_as_plain_fasttext(corpus, tmp_path, monkeypatch):
    import fasttext
    shared = tmp_path / "shared"
    pg = pseudogloss_cache.pseudoglosses(corpus, dim=8, shared=shared)
    # the reference: fastText trained on the training translations directly, as pseudogloss.py did before
    text = tmp_path / "train.txt"
    text.write_text("\n".join(r["translation"] for r in data.read_split(corpus, "train")) + "\n", encoding="utf-8")
    ref = fasttext.train_unsupervised(str(text), model="skipgram", dim=8, epoch=20, minCount=1, t=1.0, thread=1,
                                      verbose=0)
    assert torch.equal(pg.prototypes[:-1], torch.tensor(np.array([ref.get_word_vector(w) for w in pg.vocab])))
    [kept] = shared.iterdir()
    monkeypatch.setattr(pseudogloss, "_skipgram_model", lambda *a: pytest.fail("trained again"))
    again = pseudogloss_cache.pseudoglosses(corpus, dim=8, shared=shared, cache_dir=tmp_path / "run")
    assert torch.equal(again.prototypes, pg.prototypes) and again.labels == pg.labels
    assert (tmp_path / "run" / "pseudoglosses-train-dev-test.pt").is_file() and list(shared.iterdir()) == [kept]
    other = copy_corpus(corpus, tmp_path / "other")                           # other annotations: another entry
    table, sentence = data.annotation_path(other, "dev"), data.read_split(other, "dev")[0]["translation"]
    table.write_text(table.read_text(encoding="utf-8").replace(sentence, "heute regen"), encoding="utf-8")
    monkeypatch.undo()
    pseudogloss_cache.pseudoglosses(other, dim=8, shared=shared)
    assert len(list(shared.iterdir())) == 2 and not list(other.rglob("pseudoglosses-*"))


@pytest.mark.parametrize("damage,entry", [
    (lambda pg: pg["vocab"].__setitem__(2, 5), "vocab[2] is 5, not a pseudo-gloss"),            # X case 7
    (lambda pg: next(iter(pg["labels"].values())).append(999), "] holds 999, not an index into the"),  # X case 14
    (lambda pg: pg["labels"].pop(next(iter(pg["labels"]))), "labels has no labels for video"),  # X case 14
    (lambda pg: pg["prototypes"].__setitem__((0, 0), math.nan), "prototypes is (27, 8), not finite")])
def test_a_cache_entry_of_the_wrong_type_or_out_of_range_is_named_and_rebuilt(corpus, tmp_path, capsys, damage,
                                                                              entry):
    shared = tmp_path / "shared"
    pg = pseudogloss_cache.pseudoglosses(corpus, dim=8, shared=shared)
    [kept] = shared.iterdir()
    cached = torch.load(kept, weights_only=True)
    damage(cached)
    torch.save(cached, kept)                                  # the right key, a bad entry
    capsys.readouterr()
    again = pseudogloss_cache.pseudoglosses(corpus, dim=8, shared=shared, cache_dir=tmp_path / "run")
    printed = capsys.readouterr().out
    assert f"pseudo-gloss cache '{kept}' is damaged (entry " in printed and entry in printed
    assert "rebuilding it" in printed
    assert again.vocab == pg.vocab and again.labels == pg.labels and torch.equal(again.prototypes, pg.prototypes)
    assert torch.load(kept, weights_only=True)["labels"] == pg.labels                  # the shared entry rebuilt


def test_a_replaced_fasttext_file_is_not_taken_for_the_cached_one(corpus, tmp_path):  # X case 4
    words = sorted({g for s in data.SPLITS for r in data.read_split(corpus, s) for g in pseudogloss.extract(
        r["translation"])})
    model, shared = tmp_path / "cc.de.8.bin", tmp_path / "shared"
    first = np.ones((len(words), 8), np.float32)
    fasttext_bin(model, words, first)
    pg = pseudogloss_cache.pseudoglosses(corpus, fasttext_path=model, dim=8, shared=shared,
                                         cache_dir=tmp_path / "run1")
    assert pg.vocab == words and torch.equal(pg.prototypes[:-1], torch.from_numpy(first))
    stat = model.stat()
    second = np.arange(len(words) * 8, dtype=np.float32).reshape(len(words), 8)
    fasttext_bin(model, words, second)                        # another model, same path, size and time
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = pseudogloss_cache.pseudoglosses(corpus, fasttext_path=model, dim=8, shared=shared,
                                            cache_dir=tmp_path / "run2")
    assert torch.equal(again.prototypes[:-1], torch.from_numpy(second)) and len(list(shared.iterdir())) == 2


def test_prepare_builds_the_pseudoglosses_that_pretraining_then_reads(corpus, shared_cache, monkeypatch, capsys):
    from tools import prepare
    monkeypatch.setattr(sys, "argv", ["prepare", "--pseudoglosses", "--data", str(corpus), "--fasttext", "skipgram"])
    prepare.main()
    printed = capsys.readouterr().out
    assert f"in '{shared_cache}'" in printed and "prototypes: a 300-d skip-gram fastText trained on the" in printed
    monkeypatch.setattr(pseudogloss, "_skipgram_model", lambda *a: pytest.fail("trained again"))
    pg = pseudogloss_cache.pseudoglosses(corpus, shared=pseudogloss_cache.shared_dir())
    assert pg.prototypes.shape == (len(pg.vocab) + 1, 300)


def _gold_f1(path, lang):
    # micro F1 of extract() against a gold file, multiset match per sentence, written out independently of
    # tagger_scores.read_gold / gold_scores
    hit = n_got = n_gold = 0
    sentences = 0
    for line in (Path(__file__).parent / path).read_text(encoding="utf-8").split("\n"):
        if line and line[0] != "#":
            sentence, glosses = line.split("\t")
            gold, got = glosses.split(" "), pseudogloss.extract(sentence, lang=lang)
            left = list(gold)
            for g in got:
                if g in left:
                    left.remove(g)
                    hit += 1
            n_got, n_gold, sentences = n_got + len(got), n_gold + len(gold), sentences + 1
    p, r = hit / n_got, hit / n_gold
    return sentences, 2 * p * r / (p + r)


@pytest.mark.parametrize("path,lang", [("tools/gold/en.tsv", "en"), ("tools/gold/zh.tsv", "zh")])
def test_english_and_chinese_taggers_on_gold_sets(path, lang):
    # hand-checked gold files (DESIGN.md "Pseudo-glosses in English and Chinese"); the German tagger scores 0.978
    sentences, f1 = _gold_f1(path, lang)
    assert sentences >= 40 and f1 >= 0.95


def test_unknown_language_is_refused():
    with pytest.raises(ValueError, match="'fr'"):
        pseudogloss.extract("bonjour", lang="fr")
    with pytest.raises(ValueError, match="'fr'"):
        metrics.scores(["a"], ["a"], lang="fr")
    with pytest.raises(ValueError, match="'fr'"):
        tokenizer.build_sentencepiece(SENTENCES, lang="fr")


def test_pseudoglosses_built_for_a_chinese_corpus(tmp_path):
    rows = {"train": ["我今天去超市买苹果。", "明天会下雨吗？", "我坐地铁去学校。", "医生说你要多休息。"],
            "dev": ["今天的天气很好。"], "test": ["他是我的哥哥。"]}
    for split, sentences in rows.items():
        path = data.annotation_path(tmp_path, split)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("name|translation\n" + "".join(f"{split}{i}|{s}\n" for i, s in enumerate(sentences)),
                        encoding="utf-8")
    pg = pseudogloss.build_pseudoglosses(tmp_path, dim=8, lang="zh")
    words = {g for sentences in rows.values() for s in sentences for g in pseudogloss.extract(s, lang="zh")}
    assert pg.vocab == sorted(words) and {"超市", "下雨", "哥哥"} <= words and pseudogloss.tagger_name("zh") == "jieba"
    assert [pg.vocab[i] for i in pg.labels["test0"]] == ["他", "我", "哥哥"]
    # skip-gram learns from the segmented text: its words are the tagger's, not one "word" a sentence
    seen = []
    real = pseudogloss._skipgram_model
    pseudogloss._skipgram_model = lambda sentences, *a: seen.append(sentences) or real(sentences, *a)
    try:
        pseudogloss.build_pseudoglosses(tmp_path, dim=8, lang="zh")
    finally:
        pseudogloss._skipgram_model = real
    assert seen[0][0] == " ".join(w for w, _, _ in pseudogloss.tag_sentence(rows["train"][0], "zh"))
    assert seen[0][0].split(" ")[:3] == ["我", "今天", "去"]


def test_sentencepiece_tokenizer_round_trip(tmp_path):
    tok = tokenizer.load_or_build_tokenizer("sentencepiece", SENTENCES, tmp_path / "tok")
    assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id, tok.lang_id) == (0, 1, 2, 3, 4) and tok.keep_ids is None
    for s in SENTENCES:
        ids = tok.encode(s)
        assert ids and not set(ids) & {0, 1, 2, 4}
        assert tok.decode([tok.lang_id] + ids + [tok.eos_id, tok.pad_id]) == s
    again = tokenizer.load_or_build_tokenizer("sentencepiece", [], tmp_path / "tok")
    assert again.vocab_size == tok.vocab_size and again.encode(SENTENCES[0]) == tok.encode(SENTENCES[0])
    with pytest.raises(ValueError, match="sentencepiece"):
        tokenizer.load_or_build_tokenizer("mbart", SENTENCES, tmp_path / "tok")


def test_mbart_tokenizer_trimming(tmp_path):
    transformers = pytest.importorskip("transformers")
    # a stand-in for mbart-large-cc25's tokenizer: mBART's layout over a small unigram vocabulary
    pieces = tokenizer.build_sentencepiece(SENTENCES * 3).model
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(5, pieces.get_piece_size())]
    transformers.MBartTokenizer(vocab=vocab).save_pretrained(str(tmp_path / "fake-mbart"))
    tok = tokenizer.load_or_build_tokenizer("mbart", SENTENCES[:2], tmp_path / "tok", str(tmp_path / "fake-mbart"))
    full = transformers.MBartTokenizer.from_pretrained(str(tmp_path / "fake-mbart"), src_lang="de_DE")
    assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id, tok.lang_id) == (0, 1, 2, 3, 4)
    assert tok.keep_ids[:5].tolist() == [0, 1, 2, 3, full.convert_tokens_to_ids("de_DE")]
    assert tok.vocab_size < len(full) and len(set(tok.keep_ids.tolist())) == tok.vocab_size
    ids = tok.encode(SENTENCES[0])
    assert max(ids) < tok.vocab_size and full.convert_ids_to_tokens(tok.keep_ids[ids].tolist()) == \
        full.convert_ids_to_tokens(full(SENTENCES[0], add_special_tokens=False)["input_ids"])
    assert tok.decode([tok.lang_id] + ids + [tok.eos_id]) == SENTENCES[0]
    loaded = tokenizer.load_or_build_tokenizer("mbart", [], tmp_path / "tok")
    assert torch.equal(loaded.keep_ids, tok.keep_ids) and loaded.encode(SENTENCES[1]) == tok.encode(SENTENCES[1])
    state = tok.state()  # what a checkpoint carries: the tokenizer files, used without the hub
    again = tokenizer.Tokenizer.from_state(state)
    assert torch.equal(again.keep_ids, tok.keep_ids) and again.encode(SENTENCES[1]) == tok.encode(SENTENCES[1])
    with pytest.raises(ValueError, match="fingerprint"):
        tokenizer.Tokenizer.from_state({**state, "fingerprint": "0" * 64})
    with pytest.raises(OSError, match="--mbart"):
        tokenizer.build_mbart(SENTENCES, str(tmp_path / "no-such-model"))


def test_tokenizer_state_file_names_are_checked_as_data():
    meta = b'{"kind": "mbart", "keep_ids": [0, 1, 2, 3]}'
    good = {"kind": "mbart", "fingerprint": "0" * 64,
            "files": {"tokenizer.json": meta, "mbart-tokenizer/sentencepiece.bpe.model": b"x"}}
    assert tokenizer.check_state(good) is good["files"]
    for bad in ("mbart-tokenizer/../x", "mbart-tokenizer/a/b", "mbart-tokenizer/", "/etc/x", "../x", "spm.model/..",
                "other/x", "mbart-tokenizer/..", "mbart-tokenizer/a\\..\\..\\b"):
        state = {**good, "files": {**good["files"], bad: b"x"}}
        with pytest.raises(ValueError, match="its tokenizer holds a file named .*names in a checkpoint are never used"):
            tokenizer.check_state(state)
    with pytest.raises(ValueError, match="holds str, not bytes"):
        tokenizer.check_state({**good, "files": {**good["files"], "tokenizer.json": "{}"}})
    with pytest.raises(ValueError, match="does not describe a sentencepiece tokenizer"):
        tokenizer.check_state({"kind": "sentencepiece", "fingerprint": "", "files": {"tokenizer.json": meta,
                                                                                     "spm.model": b""}})


def hand_mbart(tmp_path):
    """An mBART-layout tokenizer over hand-set unigram pieces: "▁regen" is one piece (the full model's best
    spelling of "regen"), "▁reg" + "en" another spelling; "am tag regnet" and "am tag reg en" use only
    ▁am ▁tag ▁regnet ▁reg ▁ en."""
    transformers = pytest.importorskip("transformers")
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁am", -1.0), ("▁tag", -1.0),
             ("▁regnet", -1.0), ("▁regen", -1.0), ("▁reg", -2.0), ("net", -2.0), ("en", -3.0), ("▁", -5.0),
             ("e", -5.0), ("n", -5.0), ("x", -5.0)]
    transformers.MBartTokenizer(vocab=vocab).save_pretrained(str(tmp_path / "hand-mbart"))
    return tokenizer.build_mbart(["am tag regnet", "am tag reg en"], str(tmp_path / "hand-mbart"))


def test_trimming_keeps_every_special_token_and_spells_unseen_words_with_kept_pieces(tmp_path):
    tok = hand_mbart(tmp_path)
    full = tok.model
    # kept: the 4 specials, de_DE, the other 24 language codes and <mask> (hftrim keeps all_special_tokens), and
    # the 6 pieces the two training sentences use
    assert len(full.all_special_ids) == 30 and set(full.all_special_ids) <= set(tok.keep_ids.tolist())
    assert (tok.bos_id, tok.pad_id, tok.eos_id, tok.unk_id, tok.lang_id) == (0, 1, 2, 3, 4)
    assert sorted(full.convert_ids_to_tokens(tok.keep_ids[30:].tolist())) == sorted(
        ["▁am", "▁tag", "▁regnet", "▁reg", "▁", "en"]) and tok.vocab_size == 36
    assert [tok.pieces()[i] for i in tok.encode("am tag regnet")] == ["▁am", "▁tag", "▁regnet"]
    # "regen": the full model spells it "▁regen", which trimming dropped; the trimmed model spells it "▁reg" "en",
    # as the authors' trimmed sentencepiece model does, so it survives decoding
    assert full.convert_ids_to_tokens(full("regen", add_special_tokens=False)["input_ids"]) == ["▁regen"]
    assert [tok.pieces()[i] for i in tok.encode("am tag regen")] == ["▁am", "▁tag", "▁reg", "en"]
    assert tok.decode(tok.encode("am tag regen")) == "am tag regen"
    # "x" is a piece of the full model but no kept piece spells it: <unk>, which decoding drops
    assert tok.encode("regenx")[-1] == tok.unk_id and tok.decode(tok.encode("am regenx")) == "am regen"
    # every kept special token is skipped in decoding, e.g. another language code the decoder might emit
    other = tok.keep_ids.tolist().index(full.convert_tokens_to_ids("en_XX"))
    assert tok.decode([tok.lang_id, other] + tok.encode("am tag") + [tok.eos_id]) == "am tag"


def test_sentencepiece_chinese_round_trip(tmp_path):
    tok = tokenizer.load_or_build_tokenizer("sentencepiece", ZH_SENTENCES * 2, tmp_path / "tok", lang="zh")
    assert tok.lang_code == "zh_CN" and tok.model.id_to_piece(tok.lang_id) == "zh_CN" and tok.lang_id == 4
    for s in ZH_SENTENCES:
        ids = tok.encode(s)
        assert tok.unk_id not in ids and tok.decode([tok.lang_id] + ids + [tok.eos_id]) == s
    again = tokenizer.Tokenizer.from_state(tok.state())  # what a checkpoint carries
    assert again.lang_code == "zh_CN" and again.lang_id == tok.lang_id and again.fingerprint() == tok.fingerprint()
    assert tokenizer.Tokenizer.load(tmp_path / "tok").lang_code == "zh_CN"
    with pytest.raises(ValueError, match="zh_CN"):  # the folder holds a Chinese tokenizer, a German run is refused
        tokenizer.load_or_build_tokenizer("sentencepiece", SENTENCES, tmp_path / "tok", lang="de")
    assert tokenizer.LANG_CODES == {"de": "de_DE", "en": "en_XX", "zh": "zh_CN"}


def test_mbart_tokenizer_trimming_chinese(tmp_path):
    transformers = pytest.importorskip("transformers")
    # a stand-in for mbart-large-cc25's tokenizer as in test_mbart_tokenizer_trimming, over German and Chinese
    # (pieces without NFKC, which the stand-in's tokenizer does not apply, so that ？ and ， have pieces of their own)
    pieces = tokenizer.build_sentencepiece(SENTENCES * 3 + ZH_SENTENCES * 3, lang="zh").model
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(5, pieces.get_piece_size())]
    transformers.MBartTokenizer(vocab=vocab).save_pretrained(str(tmp_path / "fake-mbart"))
    full = transformers.MBartTokenizer.from_pretrained(str(tmp_path / "fake-mbart"), src_lang="zh_CN")
    tok = tokenizer.load_or_build_tokenizer("mbart", ZH_SENTENCES, tmp_path / "tok", str(tmp_path / "fake-mbart"),
                                            lang="zh")
    assert tok.lang_code == "zh_CN" and tok.keep_ids[tok.lang_id] == full.convert_tokens_to_ids("zh_CN")
    for s in ZH_SENTENCES:  # every Chinese piece of the training text kept, the same pieces as the full tokenizer
        ids = tok.encode(s)
        assert tok.unk_id not in ids and full.convert_ids_to_tokens(tok.keep_ids[ids].tolist()) == \
            full.convert_ids_to_tokens(full(s, add_special_tokens=False)["input_ids"])
        assert tok.decode([tok.lang_id] + ids + [tok.eos_id]) == s
    again = tokenizer.Tokenizer.from_state(tok.state())
    assert again.lang_code == "zh_CN" and again.lang_id == tok.lang_id and torch.equal(again.keep_ids, tok.keep_ids)
    german = tokenizer.load_or_build_tokenizer("mbart", ZH_SENTENCES, tmp_path / "de", str(tmp_path / "fake-mbart"))
    assert german.lang_code == "de_DE" and german.fingerprint() != tok.fingerprint()


def test_collate_in_a_worker_builds_the_batch_in_shared_memory():
    """harness.run.collate: in a worker process the frames are made in shared memory, and the batch is
    data.collate's, value for value."""
    items = [{"name": str(i), "translation": "x", "frames": torch.randint(0, 255, (n, 3, 4, 4), dtype=torch.uint8)}
             for i, n in enumerate((3, 1))]
    assert run.shared_empty((2, 3), items[0]["frames"]).is_shared()
    loader = torch.utils.data.DataLoader(items, batch_size=2, num_workers=1, collate_fn=run.collate)
    got, want = next(iter(loader)), data.collate(items)
    assert torch.equal(got["frames"], want["frames"]) and torch.equal(got["frame_mask"], want["frame_mask"])
    assert want["frames"][1, 1:].eq(0).all() and not want["frames"].is_shared()


def test_loader_shapes_masks_and_collate(tmp_path):
    root = write_tree(tmp_path, {"v1": (5, SENTENCES[0]), "v2": (3, SENTENCES[1])})
    ds = data.SignVideos(root, "train", size=32)
    assert len(ds) == 2 and ds[0]["translation"] == SENTENCES[0]
    assert ds[0]["frames"].shape == (5, 3, 32, 32) and ds[0]["frames"].dtype == torch.uint8
    batch = data.collate([ds[0], ds[1]])
    assert batch["frames"].shape == (2, 5, 3, 32, 32)
    assert batch["frame_mask"].tolist() == [[True] * 5, [True] * 3 + [False] * 2]
    assert (batch["frames"][1, 3:] == 0).all()
    assert batch["names"] == ["v1", "v2"] and batch["translations"] == SENTENCES[:2]
    train_ds = data.SignVideos(root, "train", train=True, size=32, max_frames=2)
    assert train_ds[0]["frames"].shape == (2, 3, 37, 37)  # the whole resize: the crop follows the augmentation
    assert train_ds[0]["source_size"] == (60, 48) and data.collate([train_ds[0]])["crop"] == 32
    assert data.SignVideos(root, "train", size=32, frame_stride=2)[0]["frames"].shape[0] == 3


def test_loader_errors_name_the_path(tmp_path, monkeypatch):
    root = write_tree(tmp_path / "corpus", {"v1": (2, SENTENCES[0])})
    with open(data.annotation_path(root, "train"), "a") as f:
        f.write("missing|missing/1/*.png|-1|-1|Signer01|X|fehlt\n")
    with pytest.raises(FileNotFoundError, match="missing"):
        data.SignVideos(root, "train", size=32)[1]
    with pytest.raises(FileNotFoundError, match="PHOENIX-2014-T.dev.corpus.csv"):
        data.read_split(root, "dev")
    (root / data.FRAME_DIR / "train" / "v1" / "images0002.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match="images0002.png"):
        data.SignVideos(root, "train", size=32)[0]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        data.resolve_root(str(tmp_path / "nowhere"))
    monkeypatch.setenv("PHOENIX14T_ROOT", str(tmp_path / "unset-root"))
    with pytest.raises(FileNotFoundError, match="unset-root.*PHOENIX14T_ROOT"):
        data.resolve_root("phoenix14t")


def test_augmentation_is_one_transform_per_video_and_prepare_normalises():
    torch.manual_seed(1)
    frame = torch.rand(1, 1, 3, 24, 24)
    videos = frame.expand(8, 6, 3, 24, 24).contiguous()
    sizes = torch.tensor([[260, 210]] * 8)
    out = data.augment(videos, sizes, 21, p=1.0)
    assert out.shape == (8, 6, 3, 21, 21)
    assert torch.equal(out, out[:, :1].expand_as(out))  # the same transform on every frame of a video
    assert not torch.allclose(out[0], out[1], atol=1e-3)  # another one for the next video
    crops = [videos[0, 0, :, t:t + 21, u:u + 21] for t in range(4) for u in range(4)]
    assert not any(torch.allclose(out[0, 0], c, atol=1e-3) for c in crops)
    plain = data.augment(videos, sizes, 21, p=0.0)  # no rotation, no shift: one of the 4 x 4 crops, exactly
    assert all(any(torch.allclose(plain[b, 0], c, atol=1e-5, rtol=0) for c in crops) for b in range(8))
    central = data.prepare({"frames": (videos * 255).to(torch.uint8), "frame_mask": torch.ones(8, 6, dtype=torch.bool),
                            "crop": 21, "source_sizes": sizes}, "cpu", train=False)[0]  # unaugmented: centre crop
    assert central.shape == (8, 6, 3, 21, 21)
    batch = {"frames": torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8),
             "frame_mask": torch.ones(2, 3, dtype=torch.bool)}
    frames, mask = data.prepare(batch, "cpu", train=False)
    mean, std = torch.tensor(data.IMAGENET_MEAN), torch.tensor(data.IMAGENET_STD)
    torch.testing.assert_close(frames[1, 2, :, 5, 4], (batch["frames"][1, 2, :, 5, 4] / 255 - mean) / std)


def test_bad_videos_are_all_listed_before_training(corpus, tmp_path):
    def damage(root):
        shutil.rmtree(root / data.FRAME_DIR / "dev" / data.read_split(root, "dev")[1]["name"])
        for png in (root / data.FRAME_DIR / "train" / data.read_split(root, "train")[2]["name"]).glob("*.png"):
            png.unlink()
    root = copy_corpus(corpus, tmp_path, damage)
    dev, train_ = data.read_split(root, "dev")[1]["name"], data.read_split(root, "train")[2]["name"]
    out = tmp_path / "run"
    with pytest.raises(SystemExit,
                       match=r"(?s)2 problem\(s\).*train.*" + train_ + ".* no images.*" + dev + "' is missing"):
        pretrain.main(train_flags(corpus, out, "--epochs", "1") + ["--data", str(root)])
    outdir.release()
    assert not list(out.glob("*.pt")) and not (out / "pretrain").exists()


def test_csv_errors_name_file_and_line(corpus, tmp_path):
    header = "name|video|start|end|speaker|orth|translation\n"
    csv = data.annotation_path(tmp_path, "train")
    csv.parent.mkdir(parents=True)
    for body, message in ((b"v1|v1/1/*.png|-1|-1|S1|X|am tag\nv2|v2/1/*.png|-1|-1|S1|X\n",
                           "line 3: 6 fields where the header has 7"),
                          (b"v1|v1/1/*.png|-1|-1|S1|X|am tag\nv2|v2/1/*.png|-1|-1|S1|X|sch\xf6n\n",
                           r"line 3: not UTF-8 \(byte 0xf6\)"),
                          (b"v1|v1/1/*.png|-1|-1|S1|X| \n", "line 2: empty translation")):
        csv.write_bytes(header.encode() + body)
        with pytest.raises(ValueError, match=f"'{csv}', {message}"):
            data.read_split(tmp_path, "train")
    # as a user meets it: pre-training on annotations with a Latin-1 byte
    def latin1(root):
        path = data.annotation_path(root, "dev")
        bad = "x|x|-1|-1|S|X|s\xfcd\n".encode("latin-1")
        path.write_bytes(path.read_bytes().replace("ü".encode(), b"\xfc", 1) + bad)
    root = copy_corpus(corpus, tmp_path, latin1)
    with pytest.raises(SystemExit, match=r"PHOENIX-2014-T.dev.corpus.csv', line \d+: not UTF-8"):
        pretrain.main(train_flags(root, tmp_path / "run", "--epochs", "1"))
    outdir.release()


def test_augmentation_follows_the_authors_order_of_operations():
    """Rotation and whole-pixel shift on the 210x260 frame as released, then the resize and the crop, as the
    authors' vidaug + PIL pipeline does (nearest-neighbour rotation, PIL's affine shift, bicubic resize), against
    our one grid_sample on the square resize: the same image up to interpolation."""
    H, W, R, size = 260, 210, 64, 56
    y, x = np.mgrid[:H, :W]
    raw = Image.fromarray((128 + 100 * np.sin(np.stack([x / 23 + y / 41, y / 17, (x - y) / 29], -1))).astype(np.uint8))
    degrees, mx, my, top, left = 25.0, 7, -4, 3, 5
    authors = raw.rotate(degrees).transform(raw.size, Image.AFFINE, (1, 0, mx, 0, 1, my)).resize((R, R), Image.BICUBIC)
    authors = torch.from_numpy(np.array(authors)[top:top + size, left:left + size]).permute(2, 0, 1).float()
    resized = torch.from_numpy(np.array(raw.resize((R, R), Image.BICUBIC))).permute(2, 0, 1).float()[None, None]

    def ours(aspect):
        return data.affine_crop(resized, torch.tensor([aspect]), size, torch.tensor([math.radians(degrees)]),
                                torch.tensor([[mx / W, my / H]]), torch.tensor([[top, left]]))[0, 0]
    assert (ours(H / W) - authors).abs().mean() / 255 < 0.005        # measured 0.0019
    assert (ours(1.0) - authors).abs().mean() / 255 > 0.03           # rotating the square resize instead: 0.064
    no_change = data.affine_crop(resized, torch.tensor([H / W]), size, torch.zeros(1), torch.zeros(1, 2),
                                 torch.tensor([[top, left]]))[0, 0]
    torch.testing.assert_close(no_change, resized[0, 0, :, top:top + size, left:left + size], atol=1e-3, rtol=0)


def test_annotation_names_cannot_leave_the_dataset(tmp_path):
    import re
    root = write_tree(tmp_path / "phoenix", {"v1": (2, SENTENCES[0])})
    (tmp_path / "secret").mkdir()
    Image.fromarray(moving_frames(1)[0]).save(tmp_path / "secret" / "images0001.png")
    csv_path = data.annotation_path(root, "train")
    lines = csv_path.read_text(encoding="utf-8")
    for name, message in (("../../../../../secret", "leads outside"), (str(tmp_path / "secret"), "absolute"),
                          ("v1/../../../..", "leads outside")):
        csv_path.write_text(lines + f"{name}|x/1/*.png|-1|-1|S1|X|geheim\n", encoding="utf-8")
        with pytest.raises(ValueError, match=f"'{csv_path}', line 3: '{re.escape(name)}' .*{message}"):
            data.read_split(root, "train")
    mine = tmp_path / "mine"
    write_custom(mine, ["a|../secret|Outside."])
    with pytest.raises(ValueError, match=f"'{mine / 'train.csv'}', line 2: '../secret' leads outside"):
        data.SignVideos(mine, "train")
    h2s = tmp_path / "how2sign"
    write_how2sign(h2s)
    table = how2sign.split_file(h2s, "dev")
    table.write_text(table.read_text(encoding="utf-8") + "c\tc\tc_1\t../../../../../../secret\t1\t2\tOut.\n")
    with pytest.raises(ValueError, match=f"'{table}', line 3: .* leads outside"):
        data.read_split(h2s, "dev")


def test_duplicate_video_names_are_refused(tmp_path):
    root = write_tree(tmp_path / "phoenix", {"v1": (2, SENTENCES[0]), "v2": (2, SENTENCES[1])})
    csv_path = data.annotation_path(root, "train")
    with open(csv_path, "a", encoding="utf-8") as f:
        f.write(f"v1|v1/1/*.png|-1|-1|Signer01|X|{SENTENCES[2]}\n")
    with pytest.raises(ValueError, match=f"'{csv_path}': video name 'v1' appears twice, on lines 2 and 4"):
        data.read_split(root, "train")
    csl = tmp_path / "csl"
    write_csl_daily(csl)
    with open(csl / "sentence_label" / "split_1.txt", "a", encoding="utf-8") as f:
        f.write("S000000_P0000_T00|train\n")
    with pytest.raises(ValueError,
                       match="split_1.txt': video name 'S000000_P0000_T00' appears twice, on lines 2 and 5"):
        data.read_split(csl, "train")


def test_byte_order_mark_is_not_part_of_the_header(tmp_path):
    root = write_tree(tmp_path / "phoenix", {"v1": (2, SENTENCES[0])})
    csv_path = data.annotation_path(root, "train")
    csv_path.write_bytes(b"\xef\xbb\xbf" + csv_path.read_bytes())
    assert [(r["name"], r["translation"]) for r in data.read_split(root, "train")] == [("v1", SENTENCES[0])]
    mine = tmp_path / "mine"
    write_custom(mine, ["v|v|Fine."], header="\ufeffname|video|translation")
    assert data.read_split(mine, "train")[0]["name"] == "v"


def first_row(root, split) -> str:
    return data.annotation_path(root, split).read_text(encoding="utf-8").splitlines()[1]


def test_splits_are_read_once_non_empty_and_names_unique_across_them(finished, corpus, tmp_path, monkeypatch):
    def shared_name(root):  # dev's first video renamed to train's first: its labels would come from dev's sentence
        train, dev = first_row(root, "train").split("|")[0], first_row(root, "dev").split("|")[0]
        path = data.annotation_path(root, "dev")
        path.write_text(path.read_text(encoding="utf-8").replace(dev, train), encoding="utf-8")
        os.rename(root / data.FRAME_DIR / "dev" / dev, root / data.FRAME_DIR / "dev" / train)
    root = copy_corpus(corpus, tmp_path / "a", shared_name)
    name = first_row(root, "train").split("|")[0]
    with pytest.raises(SystemExit, match=f"video name '{name}' is in train \\('{data.annotation_path(root, 'train')}'"
                       f"\\) and in dev \\('{data.annotation_path(root, 'dev')}'\\): names must be unique"):
        pretrain.main(train_flags(root, tmp_path / "a" / "run", "--epochs", "1"))
    assert not (tmp_path / "a" / "run").exists()
    for split in ("dev", "train", "test"):  # a header-only split: nothing trained, translated or written
        def header_only(r, split=split):
            path = data.annotation_path(r, split)
            path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
        root = copy_corpus(corpus, tmp_path / split, header_only)
        empty = f"split '{split}' of '{root}' is empty: '{data.annotation_path(root, split)}' holds no videos"
        with pytest.raises(SystemExit, match=empty):
            if split == "test":
                evaluate.main(flags(root, tmp_path / split / "run", "--split", "test", "--checkpoint",
                                    finished[0] / "finetune"))
            elif split == "dev":
                pretrain.main(train_flags(root, tmp_path / split / "run", "--epochs", "1"))
            else:
                finetune.main(train_flags(root, tmp_path / split / "run", "--pretrained", "none"))
        assert not (tmp_path / split / "run").exists()
    calls = []  # each split's annotation file is read once in a process, however often a stage asks
    real = data._read_phoenix
    monkeypatch.setattr(data, "_read_phoenix", lambda r, s: calls.append(s) or real(r, s))
    root = copy_corpus(corpus, tmp_path / "once")
    for _ in range(3):
        data.read_splits(root, ["train", "dev"])
        data.SignVideos(root, "dev")
    assert sorted(calls) == ["dev", "test", "train"]


def png_bomb(path, side=20000):
    """A grayscale side x side PNG of zeros (a few hundred KB on disk)."""
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    comp, row = zlib.compressobj(9), b"\0" * (side + 1)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def test_large_frames_and_long_videos_are_held_only_as_kept_and_used(tmp_path):
    import tracemalloc
    root = write_tree(tmp_path / "phoenix", {"v1": (4, SENTENCES[0])})
    frames = sorted((root / data.FRAME_DIR / "train" / "v1").glob("*.png"))
    for t, f in enumerate(frames):  # 1200 x 1000 frames: 3.6 MB each when decoded whole
        Image.fromarray(moving_frames(1, 1000, 1200, seed=t)[0]).save(f)
    ds = data.SignVideos(root, "train", size=32)
    tracemalloc.start()
    item = ds[0]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert item["frames"].shape == (4, 3, 32, 32) and item["source_size"] == (1000, 1200)
    assert peak < 1200 * 1000 * 3, peak                             # less than one frame at its stored size
    y, x = np.mgrid[:64, :64]
    clip = np.stack([np.stack([(x + t) % 256, y * 4, np.full_like(x, t % 256)], -1)
                     for t in range(400)]).astype(np.uint8)
    synthetic.write_mp4(tmp_path / "long.mp4", clip, fps=25)
    tracemalloc.start()
    pixels, keep, times = decode.read_selected(tmp_path / "long.mp4", lambda n: data.select_frames(n, 1, 10))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pixels.shape == (10, 64, 64, 3) and list(keep) == list(data.select_frames(400, 1, 10)) and len(times) == 400
    assert peak < 40 * clip[0].nbytes, peak                         # the 10 kept frames, not the 400 decoded


def test_oversized_fields_and_mistyped_labels_name_file_line_and_entry(tmp_path):
    root = write_tree(tmp_path / "phoenix", {"v1": (2, SENTENCES[0])})
    path = data.annotation_path(root, "train")
    path.write_text(path.read_text(encoding="utf-8").replace(SENTENCES[0], "regen " * 30000), encoding="utf-8")
    with pytest.raises(ValueError, match=f"'{path}', line 2: field larger than field limit \\(131072\\)"):
        data.read_split(root, "train")
    info = [{"name": "S000000_P0000_T00", "length": 2, "label_char": 12345}]
    write_csl_daily(tmp_path / "csl", labels={"info": info})
    with pytest.raises(ValueError, match=r"csl2020ct_v2.pkl', info\[0\] \('S000000_P0000_T00'\): its translation "
                       r"\(label_char or label_word\) is int '12345', not a string or a list of strings"):
        data.read_split(tmp_path / "csl", "train")


def test_packed_loader_matches_png_loader(tmp_path):
    root = write_tree(tmp_path, {"v1": (9, "am tag"), "v2": (4, "regnet es")})
    folder = pack.pack_split(root, "train", data.read_split(root, "train"), quality=95, workers=1)
    assert folder == root / "packed" / "train" and (folder / "frames.bin").is_file()
    mtime = (folder / "index.json").stat().st_mtime_ns
    assert pack.pack_split(root, "train", data.read_split(root, "train"), quality=95,
                           workers=1) == folder  # complete: skipped
    assert (folder / "index.json").stat().st_mtime_ns == mtime
    assert not list(folder.parent.glob(".*tmp*"))                                   # no temporary left behind
    for kw in ({}, {"frame_stride": 2}, {"max_frames": 3}, {"frame_stride": 2, "max_frames": 2}):
        png = data.SignVideos(root, "train", size=32, **kw)
        packed = data.SignVideos(root, "train", size=32, packed=True, **kw)
        for i in range(2):
            a, b = png[i]["frames"], packed[i]["frames"]
            assert a.shape == b.shape and b.dtype == torch.uint8
            diff = (a.float() - b.float()).abs() / 255
            assert diff.mean() < 0.007 and diff.max() < 0.12, (kw, diff.mean(), diff.max())  # JPEG loss
    assert data.SignVideos(root, "train", size=32, packed=True, frame_stride=2)[0]["frames"].shape[0] == 5
    assert data.SignVideos(root, "train", size=32, packed=True, max_frames=3)[0]["frames"].shape[0] == 3
    # the same frames: frame 2 of the PNGs is frame 2 of the pack, not a neighbour
    png = data.SignVideos(root, "train", size=32, max_frames=3)[0]["frames"]
    packed = data.SignVideos(root, "train", size=32, packed=True, max_frames=3)[0]["frames"]
    assert ((png[:, None].float() - packed[None].float()).abs().mean((2, 3, 4)).argmin(1) == torch.arange(3)).all()
    batch = data.collate([packed_item for packed_item in data.SignVideos(root, "train", size=32, packed=True)])
    assert batch["frames"].shape == (2, 9, 3, 32, 32) and (batch["frames"][1, 4:] == 0).all()


def test_packed_at_loader_size_skips_resize(tmp_path):
    root = write_tree(tmp_path, {"v1": (3, "am tag")})
    pack.pack_split(root, "train", data.read_split(root, "train"), tmp_path / "p37", resize=37,
                    workers=1)  # size 32 -> resize 37
    a = data.SignVideos(root, "train", size=32)[0]["frames"]
    b = data.SignVideos(root, "train", size=32, packed=True, packed_dir=tmp_path / "p37")[0]["frames"]
    assert a.shape == b.shape and (a.float() - b.float()).abs().mean() / 255 < 0.012


def test_packed_errors_name_the_pack_and_command(tmp_path):
    root = write_tree(tmp_path, {"v1": (2, "am tag")})
    with pytest.raises(FileNotFoundError,
                       match=r"packed.train.*python -m tools.prepare --pack --data .* --splits train"):
        data.SignVideos(root, "train", packed=True)
    pack.pack_split(root, "train", data.read_split(root, "train"), workers=1)
    with open(data.annotation_path(root, "train"), "a") as f:
        f.write("v9|v9/1/*.png|-1|-1|Signer01|X|neu\n")
    ds = data.SignVideos(root, "train", packed=True)
    with pytest.raises(FileNotFoundError, match="'v9' is not in frame pack"):
        ds[1]


def test_damaged_packs_are_found_and_rebuilt(corpus, tmp_path):
    packs = tmp_path / "packs"
    folder = pack.pack_split(corpus, "train", data.read_split(corpus, "train"), packs, workers=1)
    good = digests(folder)
    for name, cut in (("frames.bin", lambda b: b[:-100]), ("offsets.npy", lambda b: b[:-16]),
                      ("index.json", lambda b: b[:20])):
        backup = (folder / name).read_bytes()
        (folder / name).write_bytes(cut(backup))
        with pytest.raises(OSError,
                           match=f"frame pack '{folder}' is damaged: .*{name}.*python -m tools.prepare --pack"):
            data.SignVideos(corpus, "train", packed=True, packed_dir=packs)
        problems = check.check_videos(corpus, splits_of(corpus, ["train"]), packed=True, packed_dir=packs)
        assert len(problems) == 1 and name in problems[0]
        (folder / name).write_bytes(backup)
    (folder / "frames.bin").write_bytes((folder / "frames.bin").read_bytes()[:-100])   # truncated: rebuilt
    result = script("-m", "tools.prepare", "--pack", "--data", corpus, "--splits", "train", "--packed-dir", packs,
                    "--resize", "0", "--workers", "1")
    assert result.returncode == 0, result.stderr
    assert "damaged" in result.stdout and "rebuilding" in result.stdout and "already packed" not in result.stdout
    assert digests(folder) == good and pack.pack_problems(folder) == ""


def test_how2sign_read_as_released(tmp_path, capsys):
    root = tmp_path / "how2sign"
    expected = write_how2sign(root)
    assert data.detect_layout(root) == "how2sign" and data.dataset_language(root) == "en"
    for split in ("train", "dev"):
        rows = data.read_split(root, split)
        assert [(r["name"], r["translation"]) for r in rows] == expected[split]
        assert all(r["video"].parent.name == "raw_videos" and r["video"].suffix == ".mp4" for r in rows)
    data.read_split(root, "train")
    err = capsys.readouterr().err
    assert err.count("1 of 3 sentences have no clip") == 1 and "train (train)" in err      # said once
    assert check.check_videos(root, splits_of(root, ("train", "dev"))) == []
    ds = data.SignVideos(root, "train", size=32)
    assert ds[0]["frames"].shape == (6, 3, 32, 32) and ds[1]["frames"].shape == (7, 3, 32, 32)
    assert ds[1]["translation"] == 'She said "hello"\tthen | left.'
    monkey_env = {"HOW2SIGN_ROOT": str(root)}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in monkey_env.items():
            mp.setenv(k, v)
        assert data.resolve_root("how2sign") == root
        mp.setenv("CSL_DAILY_ROOT", str(tmp_path / "no-csl"))
        with pytest.raises(FileNotFoundError, match="no-csl.*CSL_DAILY_ROOT"):
            data.resolve_root("csl-daily")


@pytest.mark.parametrize("frames_dir,header,sep", [("sentence/frames_512x512", True, "|"),
                                                    ("sentence_frames-512x512/frames_512x512", False, "|"),
                                                    ("sentence_frames-512x512", True, " ")])
def test_csl_daily_read_as_released(tmp_path, frames_dir, header, sep):
    root = tmp_path / "csl"
    expected = write_csl_daily(root, frames_dir, header, sep=sep)
    assert data.detect_layout(root) == "csl-daily" and data.dataset_language(root) == "zh"
    for split in ("train", "dev"):
        rows = data.read_split(root, split)
        assert [(r["name"], r["translation"]) for r in rows] == expected[split]
        assert all(r["video"] == root / frames_dir / r["name"] for r in rows)
    assert data.read_split(root, "test") == []
    assert check.check_videos(root, splits_of(root, ("train", "dev"))) == []
    item = data.SignVideos(root, "train", size=32)[0]
    assert item["frames"].shape == (5, 3, 32, 32) and item["translation"] == "今天天气很好"


def test_custom_layout_reads_a_video_file_and_a_frame_folder(tmp_path):
    root = tmp_path / "mine"
    clip = moving_frames(8, 48, 64)
    (root / "clips").mkdir(parents=True)
    synthetic.write_mp4(root / "clips" / "hello.mp4", clip, fps=25)
    (root / "frames" / "bye").mkdir(parents=True)
    for t, frame in enumerate(clip[:5]):  # natural order: frame2 before frame10
        Image.fromarray(frame).save(root / "frames" / "bye" / f"frame{t * 4}.png")
    write_custom(root, ["hello|clips/hello.mp4|Hello there.", "bye|frames/bye|Good bye."])
    assert data.detect_layout(root) == "custom" and data.present_splits(root) == ["train"]
    with pytest.raises(ValueError, match="--lang"):
        data.dataset_language(root)
    assert data.dataset_language(root, "en") == "en"
    with pytest.raises(ValueError, match="--lang fr: unknown language"):
        data.dataset_language(root, "fr")
    rows = data.read_split(root, "train")
    assert [(r["name"], r["video"], r["translation"]) for r in rows] == [
        ("hello", root / "clips" / "hello.mp4", "Hello there."), ("bye", root / "frames" / "bye", "Good bye.")]
    assert check.check_videos(root, splits_of(root, ["train"])) == []
    ds = data.SignVideos(root, "train", size=32)
    video, folder = ds[0]["frames"], ds[1]["frames"]
    assert video.shape == (8, 3, 32, 32) and folder.shape == (5, 3, 32, 32)
    reference = data.resize_crop(clip, 32, train=False)       # the frames as written, through the same resize
    assert (video.float() - reference.float()).abs().mean() < 6                # codec and filter differences only
    assert torch.equal(folder, reference[:5])
    assert ds.frame_indices("hello").tolist() == list(range(8))


def test_video_files_are_decoded_resized_and_packed(tmp_path):
    import tracemalloc
    root = tmp_path / "mine"
    (root / "clips").mkdir(parents=True)
    big = np.stack([np.asarray(Image.fromarray(f).resize((960, 540), Image.BILINEAR)) for f in moving_frames(12)])
    synthetic.write_mp4(root / "clips" / "big.mp4", big, fps=25)
    write_custom(root, ["big|clips/big.mp4|A large clip."])
    tracemalloc.start()
    pixels, keep, times = analysis.read_video(root / "clips" / "big.mp4")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert pixels.shape == (12, 256, 455, 3) and list(keep) == list(range(12))  # shorter side 256, aspect kept
    assert np.allclose(times, np.arange(12) / 25)                                 # 25 fps
    # memory follows the decoded size (4.2 MB here), not the file's: the clip at 960x540 would be 18.7 MB
    assert peak < 1.5 * pixels.nbytes and pixels.nbytes < big.nbytes / 4, peak
    small = decode.read_video(root / "clips" / "big.mp4", size=(37, 37))
    assert small.shape == (12, 37, 37, 3)
    folder = pack.pack_split(root, "train", data.read_split(root, "train"), resize=37, workers=1)
    a = data.SignVideos(root, "train", size=32)[0]["frames"]
    b = data.SignVideos(root, "train", size=32, packed=True)[0]["frames"]
    assert a.shape == b.shape == (12, 3, 32, 32) and (a.float() - b.float()).abs().mean() / 255 < 0.012
    assert check.check_videos(root, splits_of(root, ["train"]), packed=True) == [] and (folder / "frames.bin").is_file()


def test_bad_input_of_the_new_layouts_is_named_before_training(tmp_path):
    root = tmp_path / "mine"
    (root / "clips").mkdir(parents=True)
    (root / "clips" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video at all" * 20)
    write_custom(root, ["gone|clips/gone.mp4|Missing.", "broken|clips/broken.mp4|Broken.", "notes|clips|Not one."])
    problems = check.check_videos(root, splits_of(root, ["train"]))
    assert len(problems) == 3, problems
    assert problems[0] == f"video '{root / 'clips' / 'gone.mp4'}' is missing"
    assert problems[1].startswith(f"video file '{root / 'clips' / 'broken.mp4'}' cannot be decoded")
    assert problems[2] == f"video folder '{root / 'clips'}' has no images (frames: .bmp, .jpeg, .jpg, .png, .webp)"
    csl = tmp_path / "csl"
    write_csl_daily(csl, labels={"videos": []})
    with pytest.raises(ValueError, match=f"'{csl / 'sentence_label' / 'csl2020ct_v2.pkl'}' has no `info` list"):
        check.check_videos(csl, splits_of(csl, ["train"]))
    csl2 = tmp_path / "csl2"
    write_csl_daily(csl2)
    with open(csl2 / "sentence_label" / "split_1.txt", "a", encoding="utf-8") as f:
        f.write("S999999_P0000_T00|train\n")
    with pytest.raises(ValueError, match=f"'{csl2 / 'sentence_label' / 'split_1.txt'}', line 5: video "
                                         "'S999999_P0000_T00' is not in the label file"):
        check.check_videos(csl2, splits_of(csl2, ["train"]))
    class Evil:  # a pickle that would run code when loaded: refused, not run
        def __reduce__(self):
            return (os.system, ("echo unsafe",))
    csl3 = tmp_path / "csl3"
    write_csl_daily(csl3, labels={"info": [Evil()]})
    with pytest.raises(ValueError, match="cannot be read: it names posix.system, not plain data"):
        data.read_split(csl3, "train")
    h2s = tmp_path / "how2sign"
    write_how2sign(h2s)
    table = how2sign.split_file(h2s, "train")
    text = table.read_text(encoding="utf-8")
    table.write_text(text.replace("\tAnd I call", "\t\"And I call"), encoding="utf-8")   # a quote never closed
    with pytest.raises(ValueError, match=f"'{table}', lines 2-3 hold one row: a field runs over several lines"):
        check.check_videos(h2s, splits_of(h2s, ["train"]))
    shutil.rmtree(h2s / "sentence_level" / "val" / "rgb_front")
    with pytest.raises(FileNotFoundError, match="how2sign_realigned_val.csv': none of its 1 sentences has its clip"):
        check.check_videos(h2s, splits_of(h2s, ["dev"]))


def test_every_frame_is_checked_before_training(tmp_path):
    root = write_tree(tmp_path / "phoenix", {"v1": (4, SENTENCES[0]), "v2": (3, SENTENCES[1])})
    folder = root / data.FRAME_DIR / "train"
    (folder / "v1" / "images0003.png").write_bytes(b"")                         # an empty frame mid-video
    Image.fromarray(moving_frames(1, 30, 30)[0]).save(folder / "v2" / "images0002.png")   # another size
    problems = check.check_videos(root, splits_of(root, ["train"]))
    assert len(problems) == 2, problems
    assert problems[0].startswith(f"frame '{folder / 'v1' / 'images0003.png'}' cannot be read")
    # the commonest size is the video's: the odd frame is named, wherever it sorts
    assert problems[1] == (f"video folder '{folder / 'v2'}' mixes frame sizes (width x height): 2 of 48x60, 1 of "
                           f"30x30: '{folder / 'v2' / 'images0002.png'}'")
    good = write_tree(tmp_path / "good", {"v1": (3, SENTENCES[0])})
    png = good / data.FRAME_DIR / "train" / "v1" / "images0002.png"
    whole = png.read_bytes()
    png.write_bytes(whole[:120])                             # header intact, the rest cut off: its end is missing
    assert check.check_videos(good, splits_of(good, ["train"])) == [
        f"frame '{png}' is damaged: it does not end as a whole PNG file does (cut off, or its data overwritten): "
        "replace it, or remove its video from the split"]
    png.write_bytes(whole[:120] + bytes(len(whole) - 132) + whole[-12:])   # zeros inside, its end intact
    assert check.check_videos(good, splits_of(good, ["train"])) == []      # only decoding finds it
    full = check.check_videos(good, splits_of(good, ["train"]), full=True)
    assert len(full) == 1 and str(png) in full[0]


def test_a_dev_png_damaged_inside_is_named_before_training(corpus, tmp_path, monkeypatch, capsys):  # X case 15
    def damage(root):
        frame = decode.frame_files(root / data.FRAME_DIR / "dev" / data.read_split(root, "dev")[1]["name"])[2]
        whole = frame.read_bytes()
        frame.write_bytes(whole[:60] + bytes(len(whole) - 72) + whole[-12:])   # header and end intact
    root = copy_corpus(corpus, tmp_path, damage)
    frame = decode.frame_files(root / data.FRAME_DIR / "dev" / data.read_split(root, "dev")[1]["name"])[2]
    assert check.check_videos(root, splits_of(root, ["dev"])) == []            # the quick check alone misses it
    with pytest.raises(SystemExit, match=f"1 problem\\(s\\) with the videos of train/dev .*\n  frame '{frame}' is "
                                         "damaged: its data does not match its checksums"):
        pretrain.main(train_flags(root, tmp_path / "run", "--epochs", "1"))
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(sys, "argv", ["prepare", "--check", "--data", str(root)])
    from tools import prepare
    with pytest.raises(SystemExit):
        prepare.main()
    assert f"frame '{frame}' is damaged: its data does not match its checksums" in capsys.readouterr().out


def test_an_interrupted_pack_leaves_no_temporary_folder(tmp_path):
    root = write_tree(tmp_path / "phoenix", {"v1": (3, SENTENCES[0]), "v2": (2, SENTENCES[1])})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = root / "packed" / f".train.tmp{int(dead.stdout)}-0123abcd"          # left by a killed build
    stale.mkdir(parents=True)
    (stale / "frames.bin").write_bytes(b"half")
    alive = root / "packed" / f".train.tmp{os.getpid()}-fedcba98"                # a build still running
    alive.mkdir()
    (root / data.FRAME_DIR / "train" / "v2" / "images0002.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match="images0002.png"):
        pack.pack_split(root, "train", data.read_split(root, "train"), workers=1)
    assert sorted(p.name for p in (root / "packed").iterdir()) == [alive.name]   # its own and the stale one gone
    Image.fromarray(moving_frames(1, 48, 60)[0]).save(root / data.FRAME_DIR / "train" / "v2" / "images0002.png")
    folder = pack.pack_split(root, "train", data.read_split(root, "train"), workers=1)
    assert sorted(p.name for p in (root / "packed").iterdir()) == [alive.name, "train"]
    assert pack.pack_problems(folder) == ""


def test_bombs_fifos_and_cut_frames_are_named_before_training(tmp_path):
    root = write_tree(tmp_path / "phoenix", {"v1": (3, SENTENCES[0]), "v2": (3, SENTENCES[1]),
                                             "v3": (3, SENTENCES[2])})
    folder = root / data.FRAME_DIR / "train"
    png_bomb(folder / "v1" / "images0002.png")
    (folder / "v2" / "images0003.png").unlink()
    os.mkfifo(folder / "v2" / "images0003.png")                   # opening it would wait for a writer for ever
    cut = folder / "v3" / "images0001.png"
    cut.write_bytes(cut.read_bytes()[:33] + bytes(300))            # header intact, body overwritten
    assert check.check_videos(root, splits_of(root, ["train"])) == [
        f"frame '{folder / 'v1' / 'images0002.png'}' is 20000x20000 (400,000,000 pixels), over the 16,777,216 a "
        "frame may have: not a video frame (a decompression bomb?)",
        f"frame '{folder / 'v2' / 'images0003.png'}' is not a regular file (a FIFO): frames must be image or video "
        "files",
        f"frame '{cut}' is damaged: it does not end as a whole PNG file does (cut off, or its data overwritten): "
        "replace it, or remove its video from the split"]
    with pytest.raises(OSError, match="images0002.png' is 20000x20000"):
        decode.read_frame(folder / "v1" / "images0002.png")
    with pytest.raises(OSError, match="images0003.png' is not a regular file"):
        decode.read_frame(folder / "v2" / "images0003.png")


def pack_flags(monkeypatch, root, *extra):
    from tools import prepare
    monkeypatch.setattr(sys, "argv", ["prepare", "--pack", "--data", str(root), "--splits", "train", "--workers",
                                      "1", *map(str, extra)])
    return prepare.main


def test_pack_checks_first_and_says_what_it_cannot_write_or_removed(tmp_path, monkeypatch, capsys):
    import errno
    root = write_tree(tmp_path / "phoenix", {"v1": (3, SENTENCES[0]), "v2": (3, SENTENCES[1])})
    odd = root / data.FRAME_DIR / "train" / "v2" / "images0002.png"
    Image.fromarray(moving_frames(1, 30, 30)[0]).save(odd)
    with pytest.raises(SystemExit, match=f"cannot pack train: 1 problem\\(s\\); nothing was written:\n  video folder "
                       f"'{odd.parent}' mixes frame sizes \\(width x height\\): 2 of 48x60, 1 of 30x30: '{odd}'"):
        pack_flags(monkeypatch, root, "--resize", "0")()
    assert not (root / "packed").exists()
    Image.fromarray(moving_frames(1, 60, 48)[0]).save(odd)

    def read_only(path, write):
        raise OSError(errno.EROFS, "Read-only file system", str(path))
    with monkeypatch.context() as m:
        m.setattr(files, "atomic_write", read_only)
        with pytest.raises(SystemExit, match=f"cannot write the pack of train into '{root / 'packed'}' \\(Read-only "
                           "file system\\): pass --packed-dir DIR, and the same --packed-dir to training"):
            pack_flags(monkeypatch, root)()
    pack_flags(monkeypatch, root)()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = root / "packed" / f".train.tmp{int(dead.stdout)}-0123abcd"          # left by a killed build
    stale.mkdir()
    (stale / "frames.bin").write_bytes(bytes(1000))
    capsys.readouterr()
    pack_flags(monkeypatch, root)()
    printed = capsys.readouterr().out
    assert not stale.exists() and f"train: removed '{stale}', left by an interrupted pack" in printed
    assert "train: already packed" in printed


def test_packed_dir_never_replaces_videos_a_file_or_a_folder_it_did_not_make(tmp_path, monkeypatch):  # X 1, 23
    root = write_tree(tmp_path / "phoenix", {"v1": (3, SENTENCES[0]), "v2": (2, SENTENCES[1])})
    frames = root / data.FRAME_DIR
    before = digests(root)
    with pytest.raises(SystemExit, match=f"cannot pack train: the pack folder '{frames / 'train'}' would replace the "
                       f"folder of the split's videos '{frames / 'train' / 'v1'}': pass a --packed-dir apart from "
                       "the videos; nothing was written"):
        pack_flags(monkeypatch, root, "--packed-dir", frames)()
    named_train = write_tree(tmp_path / "sets" / "train", {"v1": (2, SENTENCES[0])})      # a root named train
    with pytest.raises(SystemExit, match=f"would replace the dataset root '{named_train}'"):
        pack_flags(monkeypatch, named_train, "--packed-dir", tmp_path / "sets")()
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(SystemExit, match=f"--packed-dir '{tmp_path / 'a-file'}' exists and is not a folder"):
        pack_flags(monkeypatch, root, "--packed-dir", tmp_path / "a-file")()
    (tmp_path / "mine" / "train").mkdir(parents=True)
    (tmp_path / "mine" / "train" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit, match=f"'{tmp_path / 'mine' / 'train'}' holds notes.txt, which no pack holds"):
        pack_flags(monkeypatch, root, "--packed-dir", tmp_path / "mine")()
    with pytest.raises(ValueError, match="would replace the folder of the split's videos"):
        pack.pack_split(root, "train", data.read_split(root, "train"), frames, workers=1)
    assert digests(root) == before and (tmp_path / "mine" / "train" / "notes.txt").read_text() == "mine"
    custom = tmp_path / "custom"                       # your own layout: --packed-dir <root> would replace train/
    shutil.copytree(frames / "train" / "v1", custom / "train" / "v1")
    (custom / "train" / "notes.txt").write_text("mine")
    write_custom(custom, ["v1|train/v1|Hello."])
    with pytest.raises(SystemExit, match=f"would replace the folder of the split's videos '{custom / 'train' / 'v1'}'"):
        pack_flags(monkeypatch, custom, "--packed-dir", custom, "--resize", "0")()
    assert (custom / "train" / "notes.txt").is_file() and len(list((custom / "train" / "v1").iterdir())) == 3
    pack_flags(monkeypatch, root, "--packed-dir", tmp_path / "packs")()              # a pack replaces a pack
    (root / data.FRAME_DIR / "train" / "v1" / "images0003.png").unlink()
    pack_flags(monkeypatch, root, "--packed-dir", tmp_path / "packs")()
    assert json.loads((tmp_path / "packs" / "train" / "index.json").read_text())["counts"] == [2, 2]


def test_a_stale_or_foreign_pack_is_rebuilt_by_packing_and_refused_by_training(tmp_path, monkeypatch,
                                                                               capsys):  # X case 5
    root = write_tree(tmp_path / "a", {"v1": (3, SENTENCES[0]), "v2": (2, SENTENCES[1])})
    other = write_tree(tmp_path / "b", {"v1": (3, SENTENCES[2]), "v2": (2, SENTENCES[3])})
    packs = tmp_path / "packs"
    pack_flags(monkeypatch, root, "--packed-dir", packs)()
    assert check.check_videos(root, splits_of(root, ["train"]), packed=True, packed_dir=packs) == []
    problems = check.check_videos(other, splits_of(other, ["train"]), packed=True, packed_dir=packs)
    assert len(problems) == 2 and problems[0].startswith(f"frame pack '{packs / 'train'}' is stale: video 'v1' "
                                                         "changed since it was packed")
    frame = root / data.FRAME_DIR / "train" / "v2" / "images0001.png"
    Image.fromarray(moving_frames(1, 60, 48, seed=5)[0]).save(frame)               # a frame replaced
    [problem] = check.check_videos(root, splits_of(root, ["train"]), packed=True, packed_dir=packs)
    assert "video 'v2' changed since it was packed" in problem and "python -m tools.prepare --pack" in problem
    capsys.readouterr()
    pack_flags(monkeypatch, root, "--packed-dir", packs)()
    printed = capsys.readouterr().out
    assert f"train: the pack in '{packs / 'train'}' is stale (video 'v2' changed since it was packed): rebuilding " \
           "it" in printed and "already packed" not in printed
    assert check.check_videos(root, splits_of(root, ["train"]), packed=True, packed_dir=packs) == []
    shutil.rmtree(root / data.FRAME_DIR / "train" / "v1")                           # frames deleted after packing
    assert check.check_videos(root, splits_of(root, ["train"]), packed=True, packed_dir=packs) == []


@pytest.mark.parametrize("edit,why", [(lambda m: m["sizes"][0].__setitem__(0, "60"), "'v1' is ['60', 48], not"),
                                      (lambda m: m["sizes"][1].__setitem__(1, 0), "'v2' is [60, 0], not"),
                                      (lambda m: m["sizes"].pop(), "sizes is not a list of one entry per video"),
                                      (lambda m: m["counts"].__setitem__(0, True), "not the JSON index of a pack")])
def test_a_pack_index_with_bad_frame_sizes_is_damaged(tmp_path, edit, why):  # X case 22
    root = write_tree(tmp_path, {"v1": (3, SENTENCES[0]), "v2": (2, SENTENCES[1])})
    folder = pack.pack_split(root, "train", data.read_split(root, "train"), workers=1)
    meta = read_json(folder / "index.json")
    edit(meta)
    (folder / "index.json").write_text(json.dumps(meta))
    [problem] = check.check_videos(root, splits_of(root, ["train"]), packed=True)
    assert problem.startswith(f"frame pack '{folder}': index.json is damaged (") and why in problem
    with pytest.raises(OSError, match=f"frame pack '{folder}' is damaged"):
        data.SignVideos(root, "train", packed=True)


# ----------------------------------------------------------------------------------------------
# The runs and their bookkeeping: optimisation, --resume, the three recipes end to end, harness/


def test_resume_gives_the_same_weights(corpus, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    pretrain.main(train_flags(corpus, straight, "--epochs", "2"))
    pretrain.main(train_flags(corpus, resumed, "--epochs", "2", "--stop-after", "1"))  # interrupted after epoch 1
    assert torch.load(resumed / "pretrain.last.pt", weights_only=True)["epoch"] == 1
    # --resume with changed schedule flags is refused, naming them, and changes nothing
    last = (resumed / "pretrain.last.pt").read_bytes()
    with pytest.raises(SystemExit, match=r"does not match this run.*--batch-size: 4 -> 2.*--lr: 0.0003 -> 0.01"):
        pretrain.main(train_flags(corpus, resumed, "--epochs", "2", "--resume", "--lr", "1e-2", "--batch-size", "2"))
    with pytest.raises(SystemExit, match=r"--epochs: 2 -> 3"):
        pretrain.main(train_flags(corpus, resumed, "--epochs", "3", "--resume"))
    assert (resumed / "pretrain.last.pt").read_bytes() == last
    pretrain.main(train_flags(corpus, resumed, "--epochs", "2", "--resume"))
    a = torch.load(straight / "pretrain.last.pt", weights_only=True)
    b = torch.load(resumed / "pretrain.last.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    assert a["best"] == b["best"]


@pytest.mark.slow
def test_compiled_bf16_steps_match_eager():
    """Three AdamW steps of the tiny pre-training model under bf16 autocast, its sign encoder (frozen no_grad
    DINOv2 block, LoRA, BatchNorm over valid frames, local attention, padded videos) compiled by inductor
    and eagerly: the same loss at every step within bf16's precision. Only the sign encoder is compiled
    because inductor needs minutes on 2 cores for the whole model (mBART's encoder twice, forward and
    backward); test_compile_flag_... runs the whole model through dynamo. Dropout is off, since inductor
    draws its own random numbers."""
    import torch._dynamo
    arch = dict(model.PRESETS["tiny"].mbart_arch, dropout=0.0)
    cfg = model.get_config("tiny", vocab_size=40, lora_dropout=0.0, mbart_arch=arch, n_glosses=6,
                           dino_lora_dropout=0.0, temporal_dropout=0.0, drop_path=0.0, gloss_dropout=0.0)
    frames, fmask, ids, tmask = tiny_batch()
    labels = (torch.rand(3, 6) > 0.5).float()

    def run(compile):
        torch.manual_seed(0)
        net = model.build_pretrain_model(cfg)
        make_every_weight_count(net)
        optim.train_mode(net)
        if compile:
            net.sign.compile()  # in place: the state dict keeps its keys
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-3)
        out = []
        for _ in range(3):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                result = net(frames, fmask, ids, tmask)
                loss = losses.pretrain_loss(result, labels, 0.1)[0]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            out.append(loss.detach())
        assert result["z_prime"].dtype == torch.bfloat16  # the linear layers ran in bf16
        return torch.stack(out), net

    torch._dynamo.reset()
    eager, _ = run(False)
    compiled, net = run(True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # inductor compiled graphs
    assert not any("_orig_mod" in k for k in net.state_dict())
    assert (eager[1:] < eager[0]).all()  # the steps train
    torch.testing.assert_close(compiled, eager, rtol=2e-2, atol=1e-3)  # bf16 keeps 8 significant bits


@pytest.mark.slow
def test_compile_flag_compiles_the_loop_and_keeps_checkpoint_keys(corpus, tmp_path, monkeypatch):
    """--compile: the training loop steps a torch.compile'd model; the checkpoints hold the plain model's keys.
    (Dynamo's eager backend: the same tracing and wrapper as inductor without its code generation, for speed.)"""
    compiled = []

    def compile(module, **kwargs):
        compiled.append(module)
        return torch._dynamo.optimize("eager")(module)
    monkeypatch.setattr(torch, "compile", compile)
    out = tmp_path / "run"
    pretrain.main(train_flags(corpus, out, "--epochs", "1", "--compile"))
    assert len(compiled) == 1 and isinstance(compiled[0], model.PretrainModel)
    from safetensors import safe_open
    with safe_open(out / "pretrain" / "model.safetensors", "pt") as f:
        keys = set(f.keys())
    expected = set(checkpoint.trainable_state(model.build_pretrain_model(model.get_config("tiny", vocab_size=40))))
    assert keys == expected


def test_nonfinite_loss_and_nothing_to_train_stop_the_run(corpus, tmp_path, monkeypatch):
    real = losses.pseudo_gloss_loss
    monkeypatch.setattr(losses, "pseudo_gloss_loss", lambda *a, **k: real(*a, **k) * math.nan)
    out = tmp_path / "nan"
    with pytest.raises(FloatingPointError, match=r"pretrain epoch 1 step 1: non-finite loss term\(s\) loss, psp"):
        pretrain.main(train_flags(corpus, out, "--epochs", "1"))
    assert not list(out.glob("*.pt")) and not (out / "pretrain").exists()  # no checkpoint of the broken weights
    monkeypatch.undo()

    def no_pseudoglosses(root):  # articles only: every word is dropped by the tagger
        for split in data.SPLITS:
            csv = data.annotation_path(root, split)
            lines = csv.read_text(encoding="utf-8").splitlines()
            csv.write_text("\n".join(lines[:1] + [ln.rsplit("|", 1)[0] + "|der die das" for ln in lines[1:]]) + "\n")
    root = copy_corpus(corpus, tmp_path, no_pseudoglosses)
    with pytest.raises(SystemExit, match="no pseudo-glosses in the training translations"):
        pretrain.main(train_flags(root, tmp_path / "empty", "--epochs", "1"))
    assert not (tmp_path / "empty" / "pretrain").exists()
    outdir.release()


def ddp_case():
    """A tiny pre-training model without dropout or DropPath and a fixed global batch of 4 videos."""
    arch = dict(model.PRESETS["tiny"].mbart_arch, dropout=0.0)
    cfg = model.get_config("tiny", vocab_size=40, lora_dropout=0.0, mbart_arch=arch, n_glosses=6, dino_lora_dropout=0.0,
                           temporal_dropout=0.0, drop_path=0.0, gloss_dropout=0.0)
    torch.manual_seed(0)
    net = model.build_pretrain_model(cfg)
    make_every_weight_count(net)
    frames, fmask, ids, tmask = tiny_batch(B=4, T=9)
    fmask[3, 4:] = False
    labels = (torch.rand(4, 6) > 0.5).float()
    return net, (frames, fmask, ids, tmask), labels


def ddp_worker(out_file):
    """Run under torchrun: each process takes its half of the global batch."""
    import torch.distributed as dist
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    net, batch, labels = ddp_case()
    ddp = parallel.data_parallel(parallel.sync_batch_norm(net))
    half = slice(2 * rank, 2 * rank + 2)
    out = ddp(*(x[half] for x in batch))
    loss, _, _ = losses.pretrain_loss(out, labels[half], 0.1)
    loss.backward()
    losses_all = [torch.zeros(()) for _ in range(2)]
    dist.all_gather(losses_all, loss.detach())
    # GradCache over micro-batches of 1 (BatchNorm in eval mode: a micro-batch's statistics are its own)
    micro = parallel.sync_batch_norm(ddp_case()[0])
    micro.sign.visual.norm.eval()
    ddp = parallel.data_parallel(micro)
    mine = [(tuple(x[i:i + 1] for x in batch), labels[i:i + 1]) for i in range(2 * rank, 2 * rank + 2)]
    pretrain.micro_batched_step(ddp, mine, argparse.Namespace(tau=0.1, lambda_psp=1.0, lambda_align=1.0,
                                                              psp_loss="paper", precision="fp32"), FP32)
    if rank == 0:
        torch.save({"loss": torch.stack(losses_all).mean(), "running_mean": net.sign.visual.norm.running_mean,
                    "grads": {n: p.grad for n, p in net.named_parameters() if p.grad is not None},
                    "micro_grads": {n: p.grad for n, p in micro.named_parameters() if p.grad is not None}}, out_file)
    dist.barrier()
    os._exit(0)  # the result is written; skip tearing down DDP and gloo, which sometimes hangs on CPU


@pytest.mark.slow
def test_two_process_data_parallel_matches_one_process(tmp_path):
    import subprocess
    import sys
    out_file = tmp_path / "ddp.pt"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(out_file)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    got = torch.load(out_file, weights_only=True)
    net, batch, labels = ddp_case()
    loss, _, _ = losses.pretrain_loss(net(*batch), labels, 0.1)
    loss.backward()
    torch.testing.assert_close(got["loss"], loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got["running_mean"], net.sign.visual.norm.running_mean, rtol=1e-4, atol=1e-6)
    grads = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    assert set(got["grads"]) == set(grads) and len(grads) > 20
    for n, g in grads.items():
        torch.testing.assert_close(got["grads"][n], g, rtol=1e-4, atol=1e-5, msg=n)  # float32 sums in another order
    net, batch, labels = ddp_case()  # GradCache under torchrun: no_sync, eq. 4 gathered, averaged once
    net.sign.visual.norm.eval()
    losses.pretrain_loss(net(*batch), labels, 0.1).loss.backward()
    assert set(got["micro_grads"]) == set(grads)
    for n, p in net.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(got["micro_grads"][n], p.grad, rtol=1e-4, atol=1e-5, msg=n)


def accumulation_net(kind: str, dropout: bool):
    """The tiny pre-training or translation model in float64, every trainable weight in the gradients; dropout and
    DropPath at the preset's rates, or off."""
    off = dict(lora_dropout=0.0, mbart_arch=dict(model.PRESETS["tiny"].mbart_arch, dropout=0.0), drop_path=0.0,
               dino_lora_dropout=0.0, temporal_dropout=0.0, gloss_dropout=0.0)
    cfg = model.get_config("tiny", vocab_size=40, n_glosses=6, **({} if dropout else off))
    torch.manual_seed(0)
    net = model.build_pretrain_model(cfg) if kind == "pretrain" else model.build_translation_model(cfg)
    make_every_weight_count(net)
    optim.train_mode(net)
    return net.double()


def accumulation_batch():
    """4 prepared videos of 9, 6, 3 and 5 frames, sentences of 7, 4, 6 and 2 tokens (pad 1); H [4, 6]."""
    torch.manual_seed(1)
    fmask = torch.arange(9)[None] < torch.tensor([9, 6, 3, 5])[:, None]
    tmask = torch.arange(7)[None] < torch.tensor([7, 4, 6, 2])[:, None]
    ids = torch.randint(4, 40, (4, 7)).masked_fill(~tmask, 1)
    return (torch.randn(4, 9, 3, 32, 32, dtype=torch.float64), fmask, ids, tmask), (torch.rand(4, 6) > 0.5).double()


def cut(inputs, labels, size: int, trim: bool):
    """Micro-batches of `size` rows (the last smaller), each cut to its longest video and sentence when `trim`;
    labels [B, L] of a sentence are cut with it."""
    micros = []
    for rows in (slice(s, s + size) for s in range(0, len(labels), size)):
        frames, fmask, ids, tmask = (x[rows] for x in inputs)
        t, n = (int(fmask.sum(1).max()), int(tmask.sum(1).max())) if trim else (fmask.shape[1], tmask.shape[1])
        part = labels[rows][:, :n] if labels.shape[1] == ids.shape[1] else labels[rows]
        micros.append(((frames[:, :t], fmask[:, :t], ids[:, :n], tmask[:, :n]), part))
    return micros


def same_gradients(reference, net) -> float:
    """The same parameters have gradients in both (all but the tiny preset's unused token embeddings), and they
    agree; -> their max abs difference."""
    got = {n: p.grad for n, p in net.named_parameters() if p.grad is not None}
    want = {n: p.grad for n, p in reference.named_parameters() if p.grad is not None}
    assert set(got) == set(want) and len(want) > 20 and all(g.abs().sum() > 0 for g in want.values())
    return max(float((got[n] - want[n]).abs().max()) for n in want)


GRADCACHE_ARGS = argparse.Namespace(tau=0.1, lambda_psp=0.5, lambda_align=1.0, psp_loss="paper", precision="fp32")


FP32 = optim.grad_scaler("cpu", "fp32")  # a pass-through


@pytest.mark.parametrize("size,device", [(2, "cpu"), (1, "cpu"), (3, "cpu"), pytest.param(
    2, "cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))])
def test_gradcache_gradients_terms_and_statistics_equal_the_whole_batchs_under_the_same_dropout(size, device):
    """Dropout, DropPath and BatchNorm (train mode) on: the reference runs the micro-batches forward with autograd
    from the same random state, keeps every graph, and takes eq. 5 on the whole batch's outputs in one backward.
    GradCache must replay each micro-batch's dropout (on CUDA: the GPU's random state) and count BatchNorm's
    running statistics once."""
    inputs, labels = accumulation_batch()
    micros = cut(tuple(x.to(device) for x in inputs), labels.to(device), size, trim=False)
    labels = labels.to(device)
    reference, net = accumulation_net("pretrain", True).to(device), accumulation_net("pretrain", True).to(device)
    torch.manual_seed(2)
    outs = [reference(*x) for x, _ in micros]
    whole = {k: outs[0][k] if k in ("prototypes", "temperature") else torch.cat([o[k] for o in outs]) for k in outs[0]}
    want = losses.pretrain_loss(whole, labels, 0.1, lambda_psp=0.5)
    want.loss.backward()
    torch.manual_seed(2)
    got = pretrain.micro_batched_step(net, micros, GRADCACHE_ARGS, FP32)
    diff = same_gradients(reference, net)
    assert diff < 1e-12, f"max abs difference of the gradients {diff:.2e}"
    torch.testing.assert_close(torch.stack(got), torch.stack(want).detach(), rtol=1e-12, atol=1e-12)
    bn, bn_want = net.sign.visual.norm, reference.sign.visual.norm
    assert int(bn.num_batches_tracked) == len(micros) == int(bn_want.num_batches_tracked)
    torch.testing.assert_close(bn.running_var, bn_want.running_var, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [2, 1, 3])
def test_gradcache_gradients_and_terms_equal_one_pass_over_the_whole_batch(size):
    """The plain step on the whole batch of 4 (dropout off; BatchNorm in eval mode, since a micro-batch's
    statistics are its own) against GradCache on micro-batches cut to their longest video and sentence."""
    inputs, labels = accumulation_batch()
    reference, net = accumulation_net("pretrain", False), accumulation_net("pretrain", False)
    reference.sign.visual.norm.eval(), net.sign.visual.norm.eval()
    want = losses.pretrain_loss(reference(*inputs), labels, 0.1, lambda_psp=0.5)
    want.loss.backward()
    got = pretrain.micro_batched_step(net, cut(inputs, labels, size, trim=True), GRADCACHE_ARGS, FP32)
    diff = same_gradients(reference, net)
    assert diff < 1e-12, f"max abs difference of the gradients {diff:.2e}"
    torch.testing.assert_close(torch.stack(got), torch.stack(want).detach(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [2, 1, 3])
def test_accumulated_finetuning_gradients_equal_the_whole_batchs(size):
    """Eq. 6 on the whole batch of 4 against micro-batches weighted by their share of its 19 tokens (7, 4, 6, 2:
    a share of videos would be wrong); dropout off, BatchNorm in eval mode."""
    (frames, fmask, ids, tmask), _ = accumulation_batch()
    inputs = (frames, fmask, ids, tmask)
    reference, net = accumulation_net("translation", False), accumulation_net("translation", False)
    reference.sign.visual.norm.eval(), net.sign.visual.norm.eval()
    want = losses.translation_loss(reference(*inputs), ids, pad_id=1, label_smoothing=0.2)
    want.backward()
    got = finetune.accumulated_step(net, cut(inputs, ids, size, trim=True), 1, 0.2, "fp32", FP32)
    diff = same_gradients(reference, net)
    assert diff < 1e-12, f"max abs difference of the gradients {diff:.2e}"
    torch.testing.assert_close(got, want.detach(), rtol=1e-12, atol=1e-12)


def test_micro_batches_cut_a_batch_in_order_each_to_its_longest_video():
    items = [{"frames": torch.full((n, 3, 2, 2), i, dtype=torch.uint8), "name": f"v{i}", "translation": f"t{i}"}
             for i, n in enumerate([2, 6, 3, 4])]
    batch = data.collate(items)
    first, last = data.micro_batches(batch, 3)
    assert first["names"] == ["v0", "v1", "v2"] and last["translations"] == ["t3"]
    assert first["frames"].shape[:2] == (3, 6) and last["frames"].shape[:2] == (1, 4) and last["frame_mask"].all()
    assert torch.equal(last["frames"][0], items[3]["frames"]) and first["source_sizes"].shape == (3, 2)
    assert data.micro_batches(batch, None)[0] is batch and data.micro_batches(batch, 4)[0] is batch


@pytest.mark.slow
def test_micro_batch_size_trains_both_stages_end_to_end(corpus, tmp_path, monkeypatch):
    """--micro-batch-size 3 of a batch of 4: every step of both recipes is cut into 3 + 1 videos."""
    seen = []

    def spy(module, name):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda net, micros, *a: seen.append((name, [len(m[1]) for m in micros]))
                            or real(net, micros, *a))
    spy(pretrain, "micro_batched_step"), spy(finetune, "accumulated_step")
    out = tmp_path / "run"
    pretrain.main(train_flags(corpus, out, "--epochs", "1", "--micro-batch-size", "3"))
    finetune.main(train_flags(corpus, out, "--stage1-epochs", "0", "--stage2-epochs", "1", "--micro-batch-size", "3"))
    outdir.release()
    assert seen == [("micro_batched_step", [3, 1])] * 2 + [("accumulated_step", [3, 1])] * 2  # 8 videos, 2 steps
    assert (out / "pretrain" / "model.safetensors").exists() and (out / "finetune" / "model.safetensors").exists()


def test_resume_refuses_a_change_of_any_result_flag_or_of_the_dataset(finished, corpus, tmp_path):
    out = shutil.copytree(finished[0], tmp_path / "run")
    before = digests(out)
    # fine-tuning: --val-beams decides which weights are kept, so it fixes the result
    with pytest.raises(SystemExit, match=r"finetune-stage1.last.pt' does not match this run.*--val-beams: 1 -> 2"):
        finetune.main(train_flags(corpus, out, "--stage1-epochs", "1", "--stage2-epochs", "1", "--cache-features",
                                  "--resume", "--val-beams", "2"))
    for name in ("finetune-stage1.last.pt", "finetune-stage2.last.pt", "finetune/model.safetensors",
                 "pretrain.last.pt"):
        assert digests(out)[name] == before[name], name
    # pre-training: each of eq. 5's flags, named with the saved and the new value
    for extra, named in ((["--lambda-align", "0"], "--lambda-align: 1.0 -> 0.0"),
                         (["--psp-loss", "authors"], "--psp-loss: 'paper' -> 'authors'"),
                         (["--lambda-psp", "0.5"], "--lambda-psp: 1.0 -> 0.5")):
        with pytest.raises(SystemExit, match="pretrain.last.pt' does not match this run") as e:
            pretrain.main(train_flags(corpus, out, "--epochs", "1", "--resume", *extra))
        assert named in str(e.value) and str(e.value).count("->") == 2, str(e.value)  # "(saved -> now)" and it
    assert digests(out)["pretrain.last.pt"] == before["pretrain.last.pt"]
    outdir.release()
    # another corpus at the same path with the same vocabulary (two dev translations swapped): the dataset is named
    root = copy_corpus(corpus, tmp_path)
    interrupted = tmp_path / "interrupted"
    pretrain.main(train_flags(root, interrupted, "--epochs", "2", "--stop-after", "1"))
    outdir.release()
    csv = data.annotation_path(root, "dev")
    lines = csv.read_text(encoding="utf-8").splitlines()
    first, second = lines[1].rsplit("|", 1), lines[2].rsplit("|", 1)
    assert first[1] != second[1]
    lines[1:3] = [f"{first[0]}|{second[1]}", f"{second[0]}|{first[1]}"]
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SystemExit, match=r"the dataset \(sha256 of its train and dev names and translations\)") as e:
        pretrain.main(train_flags(root, interrupted, "--epochs", "2", "--resume"))
    assert "--data" not in str(e.value) and "tokenizer" not in str(e.value)
    outdir.release()


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_each_precision_trains_and_resume_refuses_another(precision, corpus, tmp_path, monkeypatch, capsys):
    """--precision: pre-training steps under each (all three run on the CPU); the loss stays finite, every
    trainable weight that gets a gradient changes, the precision is recorded as a result flag. fp16 runs with
    dynamic loss scaling: its scaler backs off from 2^16 when the first steps' gradients overflow (those steps are
    skipped), hence eight steps of two videos there; bf16 and fp32 have no scaler."""
    initial, scalers = {}, []
    build, grad_scaler = run.build, optim.grad_scaler

    def spy_build(setup, kind, **kwargs):
        net = build(setup, kind, **kwargs)
        initial.update({n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad})
        return net
    monkeypatch.setattr(run, "build", spy_build)
    monkeypatch.setattr(optim, "grad_scaler", lambda *a: scalers.append(grad_scaler(*a)) or scalers[-1])
    out, sizes = tmp_path / "run", ["--epochs", "2", "--batch-size", "2"] if precision == "fp16" else ["--epochs", "1"]
    pretrain.main(train_flags(corpus, out, *sizes, "--precision", precision))
    losses_seen = [float(v) for v in re.findall(r"pretrain epoch \d/\d train/loss (\S+)", capsys.readouterr().out)]
    assert len(losses_seen) == int(sizes[1]) and all(math.isfinite(v) and 0 < v < 10 for v in losses_seen)
    last = torch.load(out / "pretrain.last.pt", weights_only=True)
    kept = read_json(out / "pretrain" / "training.json")["flags"]
    assert last["flags"]["precision"] == kept["precision"] == precision
    unchanged = [n for n in initial if torch.equal(initial[n], last["model"][n])]
    assert len(initial) > 40 and unchanged == ["llm_encoder.embed_tokens.weight"]  # never read: inputs_embeds
    assert scalers[0].is_enabled() == (precision == "fp16")
    if precision == "fp16":
        assert scalers[0].get_scale() < 2.0 ** 16
    outdir.release()
    other = "bf16" if precision == "fp32" else "fp32"
    with pytest.raises(SystemExit, match=f"--precision: '{precision}' -> '{other}'"):
        pretrain.main(train_flags(corpus, out, *sizes, "--precision", other, "--resume"))
    outdir.release()


def test_default_precision_follows_the_device(monkeypatch):
    """bf16 on a GPU with native bf16, fp16 on one without (a V100: bf16 only emulated), fp32 on the CPU; bf16
    asked of a GPU without it is an error naming the flag. The GPU is simulated: no CUDA here."""
    def parsed(device, *extra):
        return cli.parse(pretrain.flags(), ["--data", "synthetic", "--device", device, *extra]).precision
    assert parsed("cpu") == "fp32" and parsed("cpu", "--precision", "fp16") == "fp16"
    native = []
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation or
                        bool(native))
    assert parsed("cuda") == "fp16" and parsed("cuda", "--precision", "fp32") == "fp32"
    with pytest.raises(SystemExit):
        parsed("cuda", "--precision", "bf16")
    native.append(True)
    assert parsed("cuda") == parsed("cuda:0") == "bf16"


def test_validating_every_n_epochs_keeps_no_best_in_between(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    args = cli.parse(pretrain.flags(), train_flags(corpus, out, "--epochs", "3", "--val-every", "2"))
    setup = run.setup(args, stage="pretrain")
    pg = pseudogloss.build_pseudoglosses(setup.root)
    setup.cfg = dataclasses.replace(setup.cfg, n_glosses=len(pg.vocab))
    net = run.build(setup, "pretrain", prototypes=pg.prototypes[:-1])
    book = ledger.Ledger(setup, "pretrain", "pretrain", pretrain.RESULT_FLAGS, 3, 2, extra={"vocab": pg.vocab})
    assert [e + 1 for e in range(3) if book.validates(e)] == [2, 3]   # every 2 epochs, and always the last
    seven = ledger.Ledger(setup, "pretrain", "pretrain", pretrain.RESULT_FLAGS, 7, val_every=3)
    assert [e + 1 for e in range(7) if seven.validates(e)] == [3, 6, 7]
    best = pretrain.pretrain(setup, net, pg, book)
    outdir.release()
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("pretrain epoch")]
    assert ["val/loss" in ln for ln in lines] == [False, True, True], lines
    kept = read_json(out / "pretrain" / "training.json")
    assert kept["epoch"] in (2, 3) and kept["metric"]["value"] == best and kept["kind"] == "pretrain"
    assert torch.load(out / "pretrain.last.pt", weights_only=True)["epoch"] == 3


def test_text_formats_are_the_authors_and_cut_at_128_tokens():
    tok = tokenizer.build_sentencepiece(SENTENCES * 3)
    lang, eos, pad = tok.lang_id, tok.eos_id, tok.pad_id
    short, long = SENTENCES[0], " ".join(SENTENCES * 20)
    p, q = tok.encode(short), tok.encode(long)
    assert len(q) > 200
    (src, src_mask), (dec, dec_mask), labels = data.text_batch(tok, [short, long], "cpu")
    # source and labels `x </s> de_DE`, decoder input `de_DE x </s>` (mBART's shift of the labels), 128 at most
    assert src.shape == dec.shape == labels.shape == (2, 128)
    assert src[0, :len(p) + 2].tolist() == p + [eos, lang] and (src[0, len(p) + 2:] == pad).all()
    assert labels[0, :len(p) + 2].tolist() == p + [eos, lang] and (labels[0, len(p) + 2:] == pad).all()
    assert dec[0, :len(p) + 2].tolist() == [lang] + p + [eos] and dec_mask[0].sum() == len(p) + 2
    assert src[1].tolist() == q[:126] + [eos, lang] == labels[1].tolist()
    assert dec[1].tolist() == [lang] + q[:126] + [eos] and src_mask[1].all()


def test_unknown_lang_flag_is_refused():
    with pytest.raises(SystemExit) as e, contextlib.redirect_stderr(io.StringIO()) as err:
        cli.parse(cli.data_flags(""), ["--data", "synthetic", "--lang", "fr"])
    assert e.value.code == 2 and "--lang: invalid choice: 'fr'" in err.getvalue()


@pytest.mark.slow
def test_a_checkpoint_of_another_language_is_refused(lang_runs, tmp_path):
    (_, en_out, *_), (zh_corpus, *_) = lang_runs["en"], lang_runs["zh"]
    with pytest.raises(SystemExit, match=r"tokenizer is en_XX, the data under '.*synthetic-zh' is zh \(zh_CN\)"):
        finetune.main(train_flags(zh_corpus, tmp_path / "ft", "--pretrained", en_out / "pretrain"))
    with pytest.raises(SystemExit, match=r"tokenizer is en_XX, the data under '.*synthetic-zh' is zh \(zh_CN\)"):
        evaluate.main(flags(zh_corpus, tmp_path / "ev", "--checkpoint", en_out / "finetune"))
    assert not (tmp_path / "ft").exists() and not (tmp_path / "ev").exists()  # refused before anything is written
    outdir.release()


def test_pretraining_writes_nothing_into_the_dataset_root(corpus, tmp_path):
    root = copy_corpus(corpus, tmp_path)
    before = digests(root)
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for folder in folders:                                       # read-only (binding only for a user other than root)
        folder.chmod(0o555)
    try:
        pretrain.main(train_flags(root, tmp_path / "run", "--epochs", "1"))
    finally:
        for folder in folders:
            folder.chmod(0o755)
        outdir.release()
    assert digests(root) == before
    assert [p.name for p in (tmp_path / "run" / "cache").iterdir()] == ["pseudoglosses-train-dev-test.pt"]


def fasttext_bin(path, words, vectors):
    """A fastText skip-gram model file as fastText's saveModel writes it (no subwords: bucket 0)."""
    import struct
    args = struct.pack("<12id", vectors.shape[1], 5, 1, 1, 5, 1, 2, 2, 0, 0, 0, 100, 1e-4)  # ..., loss ns, model sg
    vocab = b"".join(w.encode() + b"\0" + struct.pack("<qb", 1, 0) for w in words)       # word, count, type word
    head = struct.pack("<ii", 793712314, 12) + args + struct.pack("<iiiqq", len(words), len(words), 0, len(words), -1)

    def matrix(m):
        return b"\0" + struct.pack("<qq", *m.shape) + m.astype("<f4").tobytes()
    path.write_bytes(head + vocab + matrix(vectors) + matrix(np.zeros_like(vectors)))


def test_a_damaged_fasttext_file_is_refused_before_anything_is_written(corpus, tmp_path, capsys):
    import struct

    import fasttext
    whole = tmp_path / "whole.bin"
    vectors = np.arange(3 * 300, dtype=np.float32).reshape(3, 300)
    fasttext_bin(whole, ["regen", "sonne", "wind"], vectors)
    assert np.array_equal(fasttext.load_model(str(whole)).get_word_vector("sonne"), vectors[1])  # fastText reads it
    half, random_header = tmp_path / "half.bin", tmp_path / "random_header.bin"
    half.write_bytes(whole.read_bytes()[:whole.stat().st_size // 2])
    random_header.write_bytes(struct.pack("<ii", 793712314, 12) + np.random.default_rng(0).bytes(4096))
    assert cli.fasttext_file(str(whole)) == str(whole)
    for path, why in ((random_header, "not a complete fastText model: its dictionary declares"),
                      (half, "cut off: its input matrix needs")):
        with pytest.raises(SystemExit):
            pretrain.main(train_flags(corpus, tmp_path / "run", "--epochs", "1", "--fasttext", path))
        assert f"argument --fasttext: '{path}': {why}" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_paper_preset_fetches_the_papers_prototypes_saying_their_size_first(corpus, tmp_path, monkeypatch,
                                                                              capsys):
    """--fasttext cc, the paper preset's default (skipgram the tiny preset's): fastText's cc.de.300 from the Hub
    (mocked: no network here), its size printed before the download and not again once cached; the run says
    which prototypes it used, the kept folder records them, and P starts from the file's vectors."""
    import huggingface_hub

    def default(*argv):
        return cli.parse(pretrain.flags(), list(argv)).fasttext
    assert default("--data", "phoenix14t") == "cc" and default("--data", "phoenix14t", "--preset", "tiny") == \
        "skipgram" == default("--data", "synthetic") == default("--data", "phoenix14t", "--fasttext", "skipgram")
    vocab = sorted({g for s in data.SPLITS for r in data.read_split(corpus, s) for g in pseudogloss.extract(
        r["translation"])})
    vectors = np.random.default_rng(0).normal(size=(len(vocab), 300)).astype(np.float32)
    fasttext_bin(tmp_path / "model.bin", vocab, vectors)
    printed_before, cached, prototypes = [], [], []
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: cached[0] if cached else None)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda url: argparse.Namespace(size=7_234_567_890)
                        if not cached else pytest.fail("asked for the size of a cached file"))

    def download(repo, name):
        printed_before.append((repo, name, capsys.readouterr().out))
        return str(tmp_path / "model.bin")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    build = run.build
    monkeypatch.setattr(run, "build", lambda *a, **kw: prototypes.append(kw["prototypes"]) or build(*a, **kw))
    pretrain.main(train_flags(corpus, tmp_path / "run", "--epochs", "1", "--fasttext", "cc"))
    (repo, name, before), = printed_before
    assert (repo, name) == ("facebook/fasttext-de-vectors", "model.bin")
    assert "prototypes: downloading fastText's cc.de.300 vectors (the paper's), facebook/fasttext-de-vectors " \
        "model.bin: 7.2 GB, once, into the Hugging Face cache" in before
    assert f"prototypes: fastText's cc.de.300 vectors (the paper's), facebook/fasttext-de-vectors: " \
        f"'{tmp_path / 'model.bin'}'" in capsys.readouterr().out
    assert read_json(tmp_path / "run" / "pretrain" / "training.json")["flags"]["fasttext"] == "cc"
    assert read_json(tmp_path / "run" / "pretrain" / "config.json")["pseudoglosses"] == vocab
    torch.testing.assert_close(prototypes[0], torch.from_numpy(vectors))
    cached.append(str(tmp_path / "model.bin"))
    assert pseudogloss.fasttext_model_file("cc", "de") == cached[0] and "downloading" not in capsys.readouterr().out
    outdir.release()


def test_an_unreachable_hub_is_a_clear_error_naming_the_vectors_and_the_way_out(monkeypatch, capsys):
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    def unreachable(*a, **kw):
        raise LocalEntryNotFoundError("cannot reach the hub")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: None)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", unreachable)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", unreachable)
    with pytest.raises(SystemExit, match=r"(?s)could not fetch fastText's cc.en.300 vectors \(facebook/fasttext-"
                       r"en-vectors.*cannot reach the hub.*--fasttext FILE, or pass --fasttext skipgram"):
        pseudogloss.fasttext_model_file("cc", "en")
    assert "model.bin: about 7 GB, once" in capsys.readouterr().out


def test_a_missing_dataset_is_named_before_any_download(tmp_path, monkeypatch):
    monkeypatch.setenv("PHOENIX14T_ROOT", str(tmp_path / "no_such_phoenix"))

    def download(cfg):
        raise AssertionError("the hub was asked before the data was checked")
    monkeypatch.setattr(limits, "widths_from_bases", download)
    with pytest.raises(SystemExit, match=f"dataset root '{tmp_path / 'no_such_phoenix'}' \\(--data phoenix14t\\) not "
                       "found: set PHOENIX14T_ROOT"):
        pretrain.main(["--data", "phoenix14t", "--out", str(tmp_path / "run"), "--workers", "0"])
    assert not (tmp_path / "run").exists()


def test_a_mistyped_pretrained_path_is_an_error_naming_it(finished, corpus, tmp_path):
    out = shutil.copytree(finished[0], tmp_path / "run")       # holds a pretrain/ that a fallback would use
    before = digests(out)
    for given in ("", str(tmp_path / "pretrian")):
        with pytest.raises(SystemExit) as e:
            finetune.main(train_flags(corpus, out, "--overwrite", "--pretrained", given, "--stage1-epochs", "1",
                                      "--stage2-epochs", "0"))
        assert f"--pretrained: checkpoint not found: '{given}'" in str(e.value)
        with pytest.raises(SystemExit) as e:
            analysis.main(flags(corpus, out, "--overwrite", "--pretrained", given, "--max-new-tokens", "2"))
        assert f"--pretrained: checkpoint not found: '{given}'" in str(e.value)
    assert digests(out) == before
    outdir.release()


def test_kept_finetuning_weights_are_those_of_the_best_beam4_period_dev_bleu(corpus, tmp_path, monkeypatch):
    """--val-beams 4 --val-every 2 --val-scoring authors (the paper preset's defaults): validation after epochs 2, 4
    and 6 only, beam 4, and the kept weights are those whose dev hypotheses score best with " ." appended, here
    not those that score best on the raw text."""
    paper = finetune.Recipe()
    assert (paper.val_beams, paper.val_every, paper.val_scoring) == (4, 2, "authors")
    refs = [r["translation"] for r in data.read_split(corpus, "dev")]
    # three sets of dev hypotheses, one per validation: one word replaced; the last two words dropped; three dropped
    canned = [[" ".join("und" if i == 1 else w for i, w in enumerate(r.split())) for r in refs],
              [" ".join(r.split()[:-2]) for r in refs], [" ".join(r.split()[:-3]) for r in refs]]
    period = [sacrebleu.corpus_bleu([h + " ." for h in hyps], [[r + " ." for r in refs]]).score for hyps in canned]
    raw = [sacrebleu.corpus_bleu(hyps, [refs]).score for hyps in canned]
    assert int(np.argmax(period)) == 0 and int(np.argmax(raw)) == 1  # the scorings disagree on these
    calls, real = [], run.translate

    def translate(net, loader, tok, device, num_beams=4, max_new_tokens=150, desc="translate", precision=None):
        _, got = real(net, loader, tok, device, num_beams, 3, desc)  # a real beam search, 3 tokens long
        assert metrics.authors_references(got, tok) == got == refs  # every dev word is spelt by the tokenizer
        calls.append({"beams": num_beams, "state": {k: v.clone() for k, v in net.state_dict().items()}})
        return canned[len(calls) - 1], got
    monkeypatch.setattr(run, "translate", translate)
    out = tmp_path / "run"
    finetune.main(train_flags(corpus, out, "--pretrained", "none", "--stage1-epochs", "0", "--stage2-epochs", "6",
                              "--val-beams", "4", "--val-every", "2", "--val-scoring", "authors"))
    outdir.release()
    assert [c["beams"] for c in calls] == [4, 4, 4]
    from safetensors.torch import load_file
    kept, weights = read_json(out / "finetune" / "training.json"), load_file(out / "finetune" / "model.safetensors")
    assert kept["epoch"] == 2 and kept["metric"]["value"] == pytest.approx(period[0])
    assert all(torch.equal(v, calls[0]["state"][k]) for k, v in weights.items())
    assert not all(torch.equal(v, calls[1]["state"][k]) for k, v in weights.items())


@pytest.mark.slow
def test_paper_preset_from_local_folders(tmp_path):
    """The main job's code path, offline: the paper preset loads DINOv2 and mBART with from_pretrained from local
    folders in the Hugging Face layout (small checkpoints of the real classes), trims mBART's tokenizer and
    embeddings to the corpus, takes its widths from the checkpoints, and pre-trains, fine-tunes and translates."""
    transformers = pytest.importorskip("transformers")
    root = synthetic.make_synthetic(tmp_path / "corpus", seed=0, n_train=4, n_dev=2, n_test=2, frame_size=32)
    train_text = [r["translation"] for r in data.read_split(root, "train")]
    # an mBART-layout tokenizer over a unigram model of these and other sentences, with mBART's language codes
    pieces = tokenizer.build_sentencepiece(SENTENCES * 3 + train_text * 3, vocab_size=200).model
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(5, pieces.get_piece_size())]
    mbart_dir, dino_dir, out = tmp_path / "mbart", tmp_path / "dino", tmp_path / "run"
    full_tok = transformers.MBartTokenizer(vocab=vocab)
    full_tok.save_pretrained(str(mbart_dir))
    full = transformers.MBartForConditionalGeneration(transformers.MBartConfig(
        vocab_size=len(full_tok), d_model=32, encoder_layers=1, decoder_layers=1, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=256,
        pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2))
    full.save_pretrained(str(mbart_dir))
    transformers.Dinov2Model(transformers.Dinov2Config(
        hidden_size=24, num_hidden_layers=3, num_attention_heads=2, intermediate_size=48, patch_size=14,
        image_size=224)).save_pretrained(str(dino_dir))
    common = ["--data", str(root), "--preset", "paper", "--dino", str(dino_dir), "--mbart", str(mbart_dir),
              "--out", str(out), "--workers", "0", "--batch-size", "2", "--device", "cpu"]
    pretrain.main(common + ["--epochs", "1", "--fasttext", "skipgram"])  # offline: no cc vectors
    finetune.main(common + ["--stage1-epochs", "1", "--stage2-epochs", "1"])
    evaluate.main(common + ["--split", "test", "--max-new-tokens", "4", "--beams", "2"])
    assert len((out / "test.hyp.txt").read_text().splitlines()) == 2
    config = read_json(out / "finetune" / "config.json")["model"]
    assert config["llm_dim"] == 32 and config["dino_arch"]["hidden_size"] == 24  # widths from the checkpoints
    # the trimmed vocabulary: specials and every training token kept, ids the same in tokenizer and embeddings
    tok = tokenizer.Tokenizer.load(out)
    assert tokenizer.Tokenizer.load(out / "finetune" / "tokenizer").fingerprint() == tok.fingerprint()
    kept = tok.keep_ids.tolist()
    specials = full_tok.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>", "de_DE"])
    assert kept[:5] == specials and len(set(kept)) == len(kept) < len(full_tok)
    for sentence in train_text:
        ids = tok.encode(sentence)
        assert [kept[i] for i in ids] == full_tok(sentence, add_special_tokens=False)["input_ids"]
        assert tok.decode([tok.lang_id] + ids + [tok.eos_id]) == sentence
    assert config["mbart"] == config["dino"] == ""  # local folders: never recorded as paths; passed by the user
    cfg = dataclasses.replace(model.Config(**config), mbart=str(mbart_dir))
    trimmed = model.load_mbart(cfg, tok.keep_ids)
    torch.testing.assert_close(trimmed.model.shared.weight, full.model.shared.weight[tok.keep_ids])


def paper_bases(root, folder, dino_seed=0):
    """Local folders in the Hugging Face layout of the paper preset's bases at their real widths (DINOv2 ViT-S/14,
    mBART-large-cc25) with random weights, mBART's vocabulary a unigram model of the corpus's sentences and
    SENTENCES. -> (dino folder, mbart folder)"""
    import transformers
    train_text = [r["translation"] for s in data.SPLITS for r in data.read_split(root, s)]
    pieces = tokenizer.build_sentencepiece(SENTENCES * 3 + train_text * 3, vocab_size=200).model
    vocab = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(pieces.id_to_piece(i), pieces.get_score(i)) for i in range(5, pieces.get_piece_size())]
    dino_dir, mbart_dir = folder / f"dino{dino_seed}", folder / "mbart"
    torch.manual_seed(dino_seed)
    transformers.Dinov2Model(transformers.Dinov2Config(**model.DINOV2_SMALL)).save_pretrained(str(dino_dir))
    if not mbart_dir.exists():
        tok = transformers.MBartTokenizer(vocab=vocab)
        tok.save_pretrained(str(mbart_dir))
        transformers.MBartForConditionalGeneration(transformers.MBartConfig(
            vocab_size=len(tok), decoder_start_token_id=2, **model.MBART_LARGE_CC25)).save_pretrained(str(mbart_dir))
    return dino_dir, mbart_dir


@pytest.mark.slow
def test_paper_preset_at_real_widths_writes_and_loads_a_folder(tmp_path):
    """The paper preset at its real widths, bases from local folders: its folder, referencing the bases or standalone,
    gives back every weight; the local base is asked for, never opened on the folder's word; another DINOv2 is
    refused, named."""
    root = synthetic.make_synthetic(tmp_path / "corpus", seed=0, n_train=4, n_dev=2, n_test=2, frame_size=32)
    dino, mbart = paper_bases(root, tmp_path)
    out = tmp_path / "run"
    args = cli.parse(finetune.flags(), ["--data", str(root), "--preset", "paper", "--dino", str(dino), "--mbart",
                                        str(mbart), "--out", str(out), "--workers", "0", "--device", "cpu"])
    setup = run.setup(args)
    net = run.build(setup, "translation")
    assert setup.cfg.llm_dim == 1024 and setup.cfg.dino_arch["hidden_size"] == 384
    names = {n for n, p in net.named_parameters() if p.requires_grad}
    about = {"kind": "finetune", "epoch": 1, "metric": {"name": "dev BLEU-4", "value": 1.0},
             "flags": {"preset": "paper"}, "pretrained": None}
    state = net.state_dict()
    for standalone in (False, True):
        path = out / ("finetune-alone" if standalone else "finetune")
        hf_folder.save(path, net, setup, about, names, standalone)
        kept = hf_folder.read(path, "finetune")
        assert kept.config["bases"]["dino"] == {"hub_id": None, "folder": dino.name,
                                                "sha256": kept.config["bases"]["dino"]["sha256"]}
        loaded = hf_folder.build(kept, "finetune", dino=None if standalone else str(dino),
                                 mbart=None if standalone else str(mbart)).state_dict()
        assert set(loaded) == set(state) and all(torch.equal(loaded[k], state[k]) for k in state)
        del loaded
    kept = hf_folder.read(out / "finetune", "finetune")
    with pytest.raises(SystemExit, match=r"field bases.dino: it was trained on a local folder \('dino0'\), which a "
                                         "folder never names as a path: pass that folder with --dino DIR"):
        hf_folder.build(kept, "finetune")
    other, _ = paper_bases(root, tmp_path, dino_seed=1)
    with pytest.raises(SystemExit, match=f"field bases.dino.sha256: the frozen weights of the base '{other}' give"):
        hf_folder.build(kept, "finetune", dino=str(other), mbart=str(mbart))
    outdir.release()


def test_three_stages_end_to_end(finished, corpus, tmp_path, capsys):
    out, printed = finished
    from safetensors import safe_open
    with safe_open(out / "finetune" / "model.safetensors", "pt") as f:
        assert any(k.startswith("mapper.") for k in f.keys())
    config = read_json(out / "finetune" / "config.json")
    assert config["model"]["image_size"] == 32
    assert "BLEU-4" in printed and "test (raw)" in printed and "test (authors' scoring)" in printed
    assert printed.index("BLEU-4") < printed.index("\nretrieval test (3 videos): video-to-text R@1 ") \
        < printed.index("\nlocalisation test: ")
    hyp, ref = (out / "test.hyp.txt").read_text().splitlines(), (out / "test.ref.txt").read_text().splitlines()
    assert len(hyp) == len(ref) == 3 and ref == [r["translation"] for r in data.read_split(corpus, "test")]
    # --video on a copy of a test video's frame folder: the frames the model sees are the dataset's, and so is
    # the sentence
    name = data.read_split(corpus, "test")[1]["name"]
    clip = tmp_path / "my clip"
    shutil.copytree(corpus / data.FRAME_DIR / "test" / name, clip)
    s = run.setup(cli.parse(evaluate.flags(), flags(corpus, out)), config["model"],
                  tok=tokenizer.Tokenizer.load(out / "finetune" / "tokenizer"), splits=())
    pixels, _, _ = analysis.read_video(clip)
    batch = analysis.video_batch(pixels, "clip", s)
    assert torch.equal(batch["frames"][0], data.SignVideos(corpus, "test", size=32)[1]["frames"])
    assert analysis.main(flags(corpus, out, "--video", str(clip), "--max-new-tokens", "5"))["translation"] == hyp[1]
    printed = capsys.readouterr().out
    assert f"translation: {hyp[1]}\n" in printed and "pseudo-glosses found" in printed
    assert (out / "my clip.glosses.png").stat().st_size > 1000
    # and as an mp4 file
    frames = np.stack([np.asarray(Image.open(p)) for p in sorted(clip.glob("*.png"))])
    synthetic.write_mp4(tmp_path / "clip.mp4", frames, fps=25)
    analysis.main(flags(corpus, out, "--video", str(tmp_path / "clip.mp4"), "--max-new-tokens", "5"))
    assert "translation: " in capsys.readouterr().out and (out / "clip.glosses.png").is_file()


def test_missing_checkpoint_and_unknown_preset_are_clear_errors(corpus, tmp_path, capsys):
    with pytest.raises(SystemExit, match="checkpoint not found: .*nothing-here"):
        finetune.main(train_flags(corpus, tmp_path / "run", "--pretrained", str(tmp_path / "nothing-here")))
    with pytest.raises(SystemExit, match="--checkpoint: checkpoint not found: .*finetune"):
        evaluate.main(flags(corpus, tmp_path / "empty"))
    with pytest.raises(SystemExit):
        pretrain.main(["--data", str(corpus), "--preset", "huge"])
    assert "--preset: invalid choice: 'huge'" in capsys.readouterr().err


def test_analysis_reads_only_the_pretraining_its_checkpoint_came_from(finished, corpus, tmp_path, capsys):
    a, printed = finished
    assert retrieval_line(printed)
    def other_sentences(root):  # another tokenizer
        csv = data.annotation_path(root, "train")
        lines = csv.read_text(encoding="utf-8").splitlines()
        csv.write_text("\n".join(lines[:1] + [ln + " und morgen wieder sonne" for ln in lines[1:]]) + "\n")
    b = tmp_path / "b"
    pretrain.main(train_flags(copy_corpus(corpus, tmp_path, other_sentences), b, "--epochs", "1"))
    assert read_json(b / "pretrain" / "config.json")["tokenizer"]["fingerprint"] != \
        read_json(a / "finetune" / "config.json")["tokenizer"]["fingerprint"]
    capsys.readouterr()
    # A's fine-tuned model evaluated into B's folder: the figures are of A's pre-training, not of B's
    analysis.main(flags(corpus, b, "--checkpoint", a / "finetune", "--max-new-tokens", "5"))
    assert retrieval_line(capsys.readouterr().out) == retrieval_line(printed)
    # a folder whose pretrain/ is not the one its finetune/ came from: not used, and the output says why
    def changed(state):
        name = next(iter(state))
        state[name] = state[name] + 1
    for name, edit, why in (("other-tokenizer", lambda c: shutil.copytree(b / "pretrain", c / "pretrain",
                                                                          dirs_exist_ok=True),
                             "its tokenizer differs"),
                            ("pretrained-again", lambda c: edited_folder(a / "pretrain", c / "pretrain",
                                                                         tensors=changed),
                             "it is not the pre-training that the model was fine-tuned from")):
        c = shutil.copytree(a, tmp_path / name)
        edit(c)
        analysis.main(flags(corpus, c, "--max-new-tokens", "5"))
        shown = capsys.readouterr().out
        assert retrieval_line(shown) is None
        assert f"retrieval and localisation not measured: '{c / 'pretrain'}' does not belong to " \
            f"'{c / 'finetune'}': {why}" in shown, shown
    # and named with --pretrained: an error before anything is translated or written
    with pytest.raises(SystemExit) as e:
        analysis.main(flags(corpus, tmp_path / "e", "--checkpoint", a / "finetune", "--pretrained", b / "pretrain"))
    assert f"--pretrained '{b / 'pretrain'}' does not belong to '{a / 'finetune'}': its tokenizer differs" \
        in str(e.value)
    assert not (tmp_path / "e").exists()
    outdir.release()


def test_analysis_refuses_bad_video_flags_and_reads_no_dataset_for_a_video(finished, corpus, tmp_path, capsys):
    for extra, message in ((["--top", "-3"], "argument --top: must be a positive integer, got '-3'"),
                           (["--threshold", "nan"], "argument --threshold: must be a number >= 0, got 'nan'")):
        with pytest.raises(SystemExit) as e:
            analysis.main(flags(corpus, tmp_path / "x", *extra))
        assert e.value.code == 2 and message in capsys.readouterr().err
    out = finished[0]
    clip = copy_test_video(corpus, tmp_path / "clip", 1)
    missing = tmp_path / "no-dataset-here"
    result = analysis.main(flags(missing, tmp_path / "eval", "--checkpoint", out / "finetune", "--video", clip,
                                 "--max-new-tokens", "5"))
    assert result["translation"] == (out / "test.hyp.txt").read_text().splitlines()[1]
    assert not missing.exists() and (tmp_path / "eval" / "clip.glosses.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_three_stages_on_the_english_and_chinese_synthetic_corpora(lang_runs, lang):
    corpus, out, result, printed, stderr = lang_runs[lang]
    code = {"en": "en_XX", "zh": "zh_CN"}[lang]
    pre, fine = (read_json(out / f / "config.json") for f in ("pretrain", "finetune"))
    assert pre["lang"] == fine["lang"] == lang
    assert pre["tokenizer"]["lang_code"] == fine["tokenizer"]["lang_code"] == code
    # the pseudo-glosses are the sentences' in their language: the signs the generator drew
    signed = {g for s in data.SPLITS for spans in synthetic.read_ground_truth(corpus, s).values() for g, _, _ in spans}
    assert pre["pseudoglosses"] == sorted(signed)
    # scored as the dataset's papers score, said in the output, against the raw references
    hyps = (out / "test.hyp.txt").read_text(encoding="utf-8").splitlines()
    refs = (out / "test.ref.txt").read_text(encoding="utf-8").splitlines()
    assert refs == [r["translation"] for r in data.read_split(corpus, "test")] and len(hyps) == 3
    tokenize = {"en": "13a", "zh": "zh"}[lang]
    assert printed.startswith(f"scoring ({lang}): sacrebleu BLEU-1..4, tokenize='{tokenize}'")
    assert "test (raw)" in printed and "' .' appended" not in printed  # PHOENIX14T's convention only
    assert result["bleu4"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs], tokenize=tokenize).score)
    cut = "How2Sign train (train): 8 of 8 sentences cut from the full-length videos"  # the clip-less one too
    assert (cut in stderr) == (lang == "en")


def test_rerun_refuses_and_overwrite_sets_the_old_run_aside(finished, corpus, tmp_path):
    out = shutil.copytree(finished[0], tmp_path / "run")
    before = digests(out)
    result = script("pretrain.py", *train_flags(corpus, out, "--epochs", "1"))  # the same command again
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert f"'{out}' already holds pretrain.py's files (pretrain, pretrain.last.pt)" in message
    assert "--resume" in message and "--out" in message and "--overwrite" in message
    assert "Traceback" not in result.stderr
    with pytest.raises(SystemExit, match=r"holds finetune.py's files \(finetune, finetune-stage1.last.pt, finetune-"):
        finetune.main(train_flags(corpus, out, "--stage1-epochs", "1", "--stage2-epochs", "1"))
    with pytest.raises(SystemExit, match=r"holds evaluate.py's files \(test.hyp.txt, test.ref.txt\)"):
        evaluate.main(flags(corpus, out, "--split", "test"))
    assert digests(out) == before                                                    # nothing lost
    # starting over: the old run, fine-tuned model and results included, goes aside, byte for byte
    pretrain.main(train_flags(corpus, out, "--epochs", "1", "--overwrite"))
    outdir.release(out)
    aside = list(out.glob("replaced-*"))
    assert len(aside) == 1
    moved = digests(aside[0])
    for name in ("pretrain/model.safetensors", "pretrain/config.json", "pretrain.last.pt", "finetune/README.md",
                 "finetune/model.safetensors", "finetune-stage2.last.pt", "test.hyp.txt", "spm.model"):
        assert moved[name] == before[name], name
    assert (out / "pretrain" / "model.safetensors").is_file() and (out / "spm.model").is_file()
    assert not any((out / n).exists() for n in ("finetune", "finetune-stage1.last.pt", "test.hyp.txt"))


def test_checkpoints_carry_tokenizer_config_and_flags(finished, corpus, tmp_path):
    out = finished[0]
    config, training = read_json(out / "finetune" / "config.json"), read_json(out / "finetune" / "training.json")
    assert config["kind"] == training["kind"] == "finetune" and config["model"]["image_size"] == 32
    flags_ = training["flags"]
    assert flags_["lr"] == 3e-4 and flags_["batch_size"] == 4 and flags_["stage2_epochs"] == 1
    assert (out / "finetune" / "tokenizer" / "spm.model").read_bytes() == (out / "spm.model").read_bytes()
    # other annotations, on which a rebuilt tokenizer would give other ids: evaluate decodes with the checkpoint's
    def longer_sentences(root):
        csv = data.annotation_path(root, "train")
        lines = csv.read_text(encoding="utf-8").splitlines()
        csv.write_text("\n".join(lines[:1] + [ln + " und morgen wieder sonne" for ln in lines[1:]]) + "\n")
    other = copy_corpus(corpus, tmp_path, longer_sentences)
    rebuilt = tokenizer.build_sentencepiece([r["translation"] for r in data.read_split(other, "train")])
    assert rebuilt.fingerprint() != config["tokenizer"]["fingerprint"]
    evaluate.main(flags(other, tmp_path / "eval", "--checkpoint", out / "finetune", "--max-new-tokens", "5"))
    assert (tmp_path / "eval" / "test.hyp.txt").read_text() == (out / "test.hyp.txt").read_text()
    # a pre-trained folder of another configuration: fine-tuning names what differs
    other = edited_folder(out / "pretrain", tmp_path / "other", config=lambda c: c["model"].update(image_size=64))
    with pytest.raises(SystemExit, match=r"other' does not match this run \(saved -> now\): image_size: 64 -> 32"):
        finetune.main(train_flags(corpus, tmp_path / "ft", "--pretrained", other))
    outdir.release()


def test_a_folder_in_use_is_refused_and_temporary_names_are_unique(corpus, tmp_path, monkeypatch):
    out = tmp_path / "busy"
    outdir.lock(out)  # this process plays the run that is writing to the folder
    result = script("pretrain.py", *train_flags(corpus, out, "--epochs", "1"))
    outdir.release(out)
    assert result.returncode != 0
    assert f"'{out}' is in use by another run (pid {os.getpid()}" in result.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in out.iterdir()) == [".lock"]                          # it wrote nothing
    tmps = []
    monkeypatch.setattr(torch, "save", lambda obj, f: (tmps.append(Path(f).name), Path(f).write_bytes(b"x")))
    checkpoint.save_checkpoint(tmp_path / "a.pt", model={})
    checkpoint.save_checkpoint(tmp_path / "a.pt", model={})
    assert tmps[0] != tmps[1] and all(f"tmp{os.getpid()}-" in t for t in tmps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "busy"]              # no temporary left


def test_bad_flags_are_errors_naming_the_flag(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    cases = [(pretrain, ["--max-frames", "0"], "argument --max-frames: must be a positive integer, got '0'"),
             (pretrain, ["--frame-stride", "0"], "argument --frame-stride: must be a positive integer, got '0'"),
             (pretrain, ["--batch-size", "0"], "argument --batch-size: must be a positive integer, got '0'"),
             (pretrain, ["--epochs", "-1"], "argument --epochs: must be a positive integer, got '-1'"),
             (pretrain, ["--epochs", "0"], "argument --epochs: must be a positive integer, got '0'"),
             (pretrain, ["--lr", "nan"], "argument --lr: must be a positive number, got 'nan'"),
             (pretrain, ["--workers", "two"], "argument --workers: expected an integer >= 0, got 'two'"),
             (pretrain, ["--resume", "--overwrite"], "pass one of them"),
             (finetune, ["--stage1-epochs", "0", "--stage2-epochs", "0"], "both 0: nothing to train"),
             (finetune, ["--label-smoothing", "1"], "argument --label-smoothing: must be a number in [0, 1)"),
             (evaluate, ["--beams", "0"], "argument --beams: must be a positive integer, got '0'")]
    for script_module, extra, message in cases:
        with pytest.raises(SystemExit) as e:
            script_module.main(flags(corpus, out, *extra))
        assert e.value.code == 2 and message in capsys.readouterr().err, (extra, message)
    assert not out.exists()                                 # refused before anything was written


def test_unreadable_checkpoints_are_clear_errors(finished, corpus, tmp_path):
    out = finished[0]
    (tmp_path / "empty").mkdir()
    (tmp_path / "old.pt").write_bytes(b"PK\x03\x04 an older release's single-file checkpoint")
    cases = [(tmp_path / "old.pt", "is a file: kept weights are a folder"),
             (tmp_path / "empty", "config.json' is missing: a kept-weights folder holds"),
             (out / "pretrain", "field kind is 'pretrain': this needs the finetune folder")]
    for path, message in cases:
        with pytest.raises(SystemExit, match=message) as e:
            evaluate.main(flags(corpus, tmp_path / "eval", "--checkpoint", path))
        assert str(path) in str(e.value), str(e.value)
    with pytest.raises(SystemExit, match="field kind is 'finetune': this needs the pretrain folder"):
        finetune.main(train_flags(corpus, tmp_path / "ft", "--pretrained", out / "finetune"))
    assert not (tmp_path / "eval").exists() and not (tmp_path / "ft").exists()
    # the --resume state: stays a torch file, read only when whole, uncompressed, plain and finite
    good = (out / "pretrain.last.pt").read_bytes()
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:  # 1 MB of zeros in a few kB: it would inflate
        z.writestr("archive/data.pkl", b"\0" * (1 << 20))
    nan = lambda c: c["model"].update({k: v * math.nan for k, v in list(c["model"].items())[:1]})
    states = [(lambda p: p.write_bytes(b""), "it is empty"), (lambda p: p.write_bytes(good[:100000]), "cannot be read"),
              (lambda p: p.write_bytes(bomb.getvalue()), "is compressed, which torch.save never writes"),
              (lambda p: torch.save({"model": {}, "a": argparse.Namespace(lr=1.0)}, p), "holds Python objects"),
              (lambda p: edited_checkpoint(out / "pretrain.last.pt", p, nan), "is not a tensor of finite values")]
    for damage, message in states:
        run_ = shutil.copytree(out, tmp_path / "resume", dirs_exist_ok=True)
        damage(run_ / "pretrain.last.pt")
        with pytest.raises(SystemExit, match=message) as e:
            pretrain.main(train_flags(corpus, run_, "--epochs", "1", "--resume"))
        assert f"--resume: '{run_ / 'pretrain.last.pt'}'" in str(e.value), str(e.value)
    outdir.release()


def spm_of(sentences):
    return tokenizer.build_sentencepiece(sentences).model.serialized_model_proto()


def kept_folder_cases(out, corpus):
    """(name, how a copy of <out>/finetune is damaged: edited_folder's keyword arguments or a function of the
    copy, the refusal's words): every way in that reading a folder refuses: truncated or crafted weights, headers
    and configs, tokenizers that name paths, links and non-files, bases that do not match."""
    first = "sign.temporal.blocks.0.attn.qkv.weight"

    def cut(d):
        w = d / "model.safetensors"
        w.write_bytes(w.read_bytes()[:-1000])

    def planted(d):  # a pickle, and a torch file, under the safetensors name: never unpickled
        (d / "model.safetensors").write_bytes(pickle.dumps({"x": 1}))

    def linked(d):
        (d / "tokenizer" / "spm.model").unlink()
        (d / "tokenizer" / "spm.model").symlink_to(out / "spm.model")

    def other_tokenizer(d):
        (d / "tokenizer" / "spm.model").write_bytes(spm_of([r["translation"] + " und morgen wieder sonne"
                                                            for r in data.read_split(corpus, "train")]))

    def huge(c):
        c["model"]["mbart_arch"].update(d_model=65536, encoder_ffn_dim=65536)
    return [
        ("wrong shape", dict(tensors=lambda s: s.update({first: s[first][:, :32]})),
         f"tensor '{first}': F32 [192, 32], but the model of its config.json has F32 [192, 64]"),
        ("other name", dict(tensors=lambda s: s.update({"sign.extra": torch.zeros(2)})),
         "holds tensor 'sign.extra', which the model of its config.json has not"),
        ("missing", dict(tensors=lambda s: s.pop(first)), f"lacks tensor '{first}'"),
        ("dtype", dict(tensors=lambda s: s.update({first: s[first].half()})), f"tensor '{first}': F16 [192, 64]"),
        ("nan", dict(tensors=lambda s: s[first].view(-1).__setitem__(0, math.nan)),
         f"tensor '{first}' holds non-finite values"),
        ("cut off", cut, "model.safetensors' is cut off or padded: its tensors end at byte"),
        ("pickle", planted, "model.safetensors' is not a safetensors file (it begins as a Python pickle"),
        ("torch file", lambda d: torch.save({"x": torch.zeros(2)}, d / "model.safetensors"),
         "model.safetensors' is not a safetensors file (it begins as a zip or torch file)"),
        ("other widths", dict(config=lambda c: c["model"].update(frame_dim=32)),
         "attn.proj.bias': F32 [64], but the model of its config.json has F32 [32]"),
        ("unknown key", dict(config=lambda c: c["model"].update(colour="red")), "has unknown field model.colour"),
        ("wrong type", dict(config=lambda c: c["model"].update(image_size="32")),
         "field model.image_size is str '32', expected int"),
        ("200,000 wide", dict(config=lambda c: c["model"].update(llm_dim=200000)),
         "field model.llm_dim is 200000: out of range (0 to 65,536)"),
        ("too many weights", dict(config=huge), "weights (fields model.*), more than 4,000,000,000"),
        ("a path", dict(config=lambda c: c["model"].update(pretrained=True, dino="/etc")),
         "field model.dino is '/etc', not a hub id (user/name): a folder's config never names a path to open"),
        ("tokenizer", other_tokenizer, "does not give config.json's field tokenizer.fingerprint"),
        ("link", linked, "spm.model' is a link"),
        ("lineage", dict(training=lambda t: t.update(pretrained={"sha256": 5})),
         "field pretrained.sha256 is int 5, expected str")]


def test_a_damaged_or_crafted_folder_is_refused_naming_file_and_field(finished, corpus, tmp_path):
    out = finished[0]
    for name, damage, message in kept_folder_cases(out, corpus):
        folder = tmp_path / name
        if callable(damage):
            damage(shutil.copytree(out / "finetune", folder))
        else:
            edited_folder(out / "finetune", folder, **damage)
        with pytest.raises(SystemExit) as e:
            evaluate.main(flags(corpus, tmp_path / "eval", "--checkpoint", folder))
        assert message in str(e.value) and str(folder) in str(e.value), (name, str(e.value))
        assert "nothing was loaded or written" in str(e.value) and not (tmp_path / "eval").exists(), name
    # NaN weights in the pre-training: fine-tuning refuses them before it starts (not as a non-finite loss)
    nan = edited_folder(out / "pretrain", tmp_path / "nan-pretrain",
                        tensors=lambda s: s["prototypes"].view(-1).__setitem__(3, math.inf))
    with pytest.raises(SystemExit, match="tensor 'prototypes' holds non-finite values"):
        finetune.main(train_flags(corpus, tmp_path / "ft", "--pretrained", nan))
    assert not (tmp_path / "ft").exists()
    # frozen weights that are not those the folder records: refused, naming the base
    other = edited_folder(out / "finetune", tmp_path / "other-base", config=lambda c: c["bases"]["dino"].update(
        sha256="0" * 64))
    with pytest.raises(SystemExit, match=r"field bases.dino.sha256: the frozen weights of the base 'the seeded random "
                                         r"weights of the preset' give [0-9a-f]{12}, the folder records 000000000000"):
        evaluate.main(flags(corpus, tmp_path / "eval2", "--checkpoint", other))
    outdir.release()


def test_a_full_disk_is_a_clear_error_and_keeps_the_old_files(finished, corpus, tmp_path, monkeypatch):
    import errno

    import safetensors.torch
    out = shutil.copytree(finished[0], tmp_path / "run")
    kept = hf_folder.read(out / "finetune", "finetune")
    net = hf_folder.build(kept, "finetune")
    setup = run.Setup(cli.parse(evaluate.flags(), flags(corpus, out)), kept.cfg, corpus, kept.tok, "cpu")
    about = kept.training | {"kind": "finetune"}
    names = {n for n, p in net.named_parameters() if p.requires_grad}
    before = digests(out)

    def full(state, path, metadata=None):
        Path(path).write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(SystemExit, match=f"could not write '{out / 'finetune'}' \\(the disk is full\\): OSError"):
        hf_folder.save(out / "finetune", net, setup, about, names)
    monkeypatch.setattr(torch, "save", lambda *a: (_ for _ in ()).throw(
        RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos")))
    with pytest.raises(SystemExit, match=r"could not write '.*pretrain.last.pt' \(a full disk\?\)"):
        checkpoint.save_checkpoint(out / "pretrain.last.pt", model={})
    assert digests(out) == before and not [p for p in out.iterdir() if ".tmp" in p.name]


def evidence_lines(printed: str) -> list:
    """The `  <pseudo-gloss>  E-hat <x>  frames ...` lines of tools/analysis.py --video's output."""
    return [ln.strip() for ln in printed.splitlines() if " E-hat " in ln]


def test_a_folder_in_a_fresh_process_translates_and_finds_as_the_run_that_wrote_it(corpus, tmp_path, monkeypatch):
    kept, real = {}, hf_folder.save

    def save(path, net, *args, **kwargs):  # the run's own models, as they were when kept
        kept[path.name] = copy.deepcopy(net).eval()
        return real(path, net, *args, **kwargs)
    monkeypatch.setattr(hf_folder, "save", save)
    out = tmp_path / "run"
    pretrain.main(train_flags(corpus, out, "--epochs", "1"))
    finetune.main(train_flags(corpus, out, "--stage1-epochs", "1", "--stage2-epochs", "1"))
    outdir.release()
    clip = copy_test_video(corpus, tmp_path / "clip", 1)
    # in this process, with the writing run's models and tokenizer: the test translations and the clip's E-hat
    args = cli.parse(tools_flags(), flags(corpus, out, "--max-new-tokens", "5"))
    setup = run.setup(args, read_json(out / "finetune" / "config.json")["model"], tok=tokenizer.Tokenizer.load(out),
                      splits=("test",))
    hyps, _ = run.translate(kept["finetune"], run.loader(setup, "test", augment=False), setup.tok, "cpu", 4, 5)
    pixels, _, _ = analysis.read_video(clip)
    batch = analysis.video_batch(pixels, "clip", setup)
    _, _, evidence, mask = analysis.pretrain_outputs(kept["pretrain"], batch, setup, pretrain.Recipe().tau)
    evidence = evidence[0, :int(mask[0].sum())]
    vocab = read_json(out / "pretrain" / "config.json")["pseudoglosses"]
    expected = [f"{vocab[u]:<16} E-hat {float(evidence[:, u].sum()):.2f}"
                for u in analysis.found_glosses(evidence, 0.5, 5)]
    # in a fresh process, from the folders alone
    ev = script("evaluate.py", *flags(corpus, tmp_path / "ev", "--checkpoint", out / "finetune", "--max-new-tokens", 5))
    assert ev.returncode == 0, ev.stderr[-2000:]
    assert (tmp_path / "ev" / "test.hyp.txt").read_text().splitlines() == hyps
    video = script("-m", "tools.analysis", *flags(corpus, tmp_path / "an", "--checkpoint", out / "finetune",
                                                  "--video", clip, "--max-new-tokens", 5))
    assert video.returncode == 0, video.stderr[-2000:]
    shown = evidence_lines(video.stdout)
    assert [ln.split("  frames")[0] for ln in shown] == expected and len(expected) >= 1, (shown, expected)
    assert f"translation: {hyps[1]}\n" in video.stdout


def tools_flags():
    ap = evaluate.flags()
    ap.add_argument("--video")
    return ap


def test_a_hub_id_is_fetched_with_huggingface_hub(finished, corpus, tmp_path, monkeypatch):
    import huggingface_hub
    out = finished[0]
    calls = []

    def snapshot_download(repo_id, allow_patterns=None, **kwargs):
        calls.append((repo_id, allow_patterns))
        if repo_id != "someone/hfa-slt-tiny":
            raise huggingface_hub.errors.LocalEntryNotFoundError(f"{repo_id}: the hub is not reachable")
        return str(shutil.copytree(out / "finetune", tmp_path / "cache" / "snapshot"))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    evaluate.main(flags(corpus, tmp_path / "ev", "--checkpoint", "someone/hfa-slt-tiny", "--max-new-tokens", "5"))
    assert (tmp_path / "ev" / "test.hyp.txt").read_text() == (out / "test.hyp.txt").read_text()
    assert calls[0][0] == "someone/hfa-slt-tiny" and "model.safetensors" in calls[0][1]
    assert digests(tmp_path / "cache" / "snapshot") == digests(out / "finetune")  # a download is not written to
    with pytest.raises(SystemExit, match="--checkpoint 'someone/missing': no such folder here, and the hub id could "
                                         "not be fetched \\(LocalEntryNotFoundError"):
        evaluate.main(flags(corpus, tmp_path / "ev2", "--checkpoint", "someone/missing"))
    outdir.release()


def test_folder_layout_card_and_standalone(finished, corpus, tmp_path):
    out, _ = finished
    names = sorted(str(p.relative_to(out / "finetune")) for p in (out / "finetune").rglob("*") if p.is_file())
    assert names == ["README.md", "config.json", "model.safetensors", "tokenizer/spm.model", "tokenizer/tokenizer.json",
                     "training.json"]
    assert (out / "finetune" / "model.safetensors").stat().st_mode & 0o777 == 0o644    # readable to share
    card_ = (out / "finetune" / "README.md").read_text()
    front = card_.split("---\n")[1]
    assert "language:\n- de\n" in front and "license: other" in front and "- bleu\n" in front
    assert "- sign-language-translation" in front and "datasets:\n- synthetic\n" in front
    assert "### test" in card_ and (out / "test.hyp.txt").exists()               # evaluate.py's table
    table = card_.split("### test")[1]
    assert "BLEU-4" in table and "| raw |" in table
    assert read_json(out / "finetune" / "training.json")["pretrained"]["sha256"] == hf_folder.digest(out / "pretrain")
    # --standalone: the frozen DINOv2 is in the folder too, and the model it gives is the same
    alone = tmp_path / "alone"
    pretrain.main(train_flags(corpus, alone, "--epochs", "1", "--standalone"))
    outdir.release()
    from safetensors import safe_open
    with safe_open(alone / "pretrain" / "model.safetensors", "pt") as f, \
            safe_open(out / "pretrain" / "model.safetensors", "pt") as g:
        frozen = set(f.keys()) - set(g.keys())
    assert frozen and all(k.startswith(("sign.visual.dino.", "text_encoder.")) or ".base." in k for k in frozen)
    assert any(k.startswith("sign.visual.dino.embeddings") for k in frozen)
    assert read_json(alone / "pretrain" / "config.json")["standalone"] is True
    pre = hf_folder.read(alone / "pretrain", "pretrain")
    net = hf_folder.build(pre, "pretrain")
    state = net.state_dict()
    assert all(torch.equal(state[k], pre.state[k]) for k in pre.state)


def test_a_run_repeated_from_its_record_gives_the_same_flags_and_weights(finished, corpus, tmp_path):
    """pretrain.py and finetune.py given only --config <kept folder> and a new --out: the same training.json
    flags and, bit for bit, the same kept weights."""
    out, again = finished[0], tmp_path / "again"

    def other_sentences(root):
        csv = data.annotation_path(root, "dev")
        lines = csv.read_text(encoding="utf-8").splitlines()
        csv.write_text("\n".join(lines[:1] + [ln + " und" for ln in lines[1:]]) + "\n", encoding="utf-8")
    other = copy_corpus(corpus, tmp_path, other_sentences)
    with pytest.raises(SystemExit, match=r"was trained on another dataset than the one under .* --data DIR"):
        pretrain.main(["--config", str(out / "pretrain"), "--data", str(other), "--out", str(again)])
    assert not again.exists()  # the record names its dataset ("synthetic"), not where it lies: --data says where
    pretrain.main(["--config", str(out / "pretrain"), "--data", str(corpus), "--out", str(again), "--workers", "0"])
    finetune.main(["--config", str(out / "finetune" / "training.json"), "--data", str(corpus), "--out", str(again),
                   "--workers", "0"])
    outdir.release()
    for kind in ("pretrain", "finetune"):
        assert read_json(again / kind / "training.json")["flags"] == read_json(out / kind / "training.json")["flags"]
        assert (again / kind / "model.safetensors").read_bytes() == (out / kind / "model.safetensors").read_bytes()
    # the command line overrides the file
    args = cli.parse(pretrain.flags(), ["--config", str(out / "pretrain"), "--seed", "5"], "pretrain")
    recorded = read_json(out / "pretrain" / "training.json")["flags"]
    assert args.seed == 5 and args.lr == recorded["lr"] == 3e-4 and args.batch_size == 4 and args.epochs == 1


def test_config_files_set_flags_through_their_types_and_refuse_naming_the_key(finished, corpus, tmp_path):
    out = finished[0]
    (tmp_path / "ok.yaml").write_text("data: synthetic\nbatch-size: 2\nlr: 1.0e-4\n--packed: true\n"
                                      "psp_loss: authors\nfasttext: null\n", encoding="utf-8")
    args = cli.parse(pretrain.flags(), ["--config", str(tmp_path / "ok.yaml")], "pretrain")
    assert (args.batch_size, args.lr, args.packed, args.psp_loss, args.fasttext) == (2, 1e-4, True, "authors",
                                                                                    "skipgram")  # the tiny preset's
    (tmp_path / "ok.json").write_text(json.dumps({"split": "dev", "beams": 2}), encoding="utf-8")
    args = cli.parse(evaluate.flags(), ["--config", str(tmp_path / "ok.json"), "--beams", "3"], "evaluate")
    assert (args.split, args.beams) == ("dev", 3)
    cases = {"epochs: 2\n": ("finetune", r"key 'epochs' is not a flag of finetune"),
             "batch_size: -1\n": ("pretrain", r"key 'batch_size': must be a positive integer, got '-1'"),
             "seed: 1.5\n": ("pretrain", r"key 'seed': invalid literal for int"),
             "packed: 1\n": ("pretrain", r"key 'packed' is 1: the switch --packed is true or false"),
             "lr: [1, 2]\n": ("pretrain", r"key 'lr' is \[1, 2\]: expected one value"),
             "lr: null\n": ("pretrain", r"key 'lr' is None"),
             "psp-loss: mine\n": ("pretrain", r"key 'psp-loss' is 'mine', not one of paper, authors"),
             "config: other.yaml\n": ("pretrain", r"key 'config' is not a flag"),
             "- lr\n": ("pretrain", r"holds a list, not a mapping"),
             "lr: [\n": ("pretrain", r"cannot be read as YAML")}
    for i, (text, (stage, message)) in enumerate(cases.items()):
        (tmp_path / f"bad{i}.yaml").write_text(text, encoding="utf-8")
        recipe = {"pretrain": pretrain, "finetune": finetune}[stage]
        with pytest.raises(SystemExit, match=f"--config '.*bad{i}.yaml': {message}"):
            recipe.main(train_flags(corpus, tmp_path / f"out{i}", "--config", tmp_path / f"bad{i}.yaml"))
        assert not (tmp_path / f"out{i}").exists()
    # the record of another stage, and no file at all
    with pytest.raises(SystemExit, match=r"training.json': key kind is 'pretrain': the record of another stage"):
        finetune.main(train_flags(corpus, tmp_path / "ft", "--config", out / "pretrain"))
    with pytest.raises(SystemExit, match=r"training.json': key kind is 'finetune': the record of another stage"):
        evaluate.main(flags(corpus, tmp_path / "ev", "--config", out / "finetune" / "training.json"))
    with pytest.raises(SystemExit, match=r"--config '.*missing.yaml': no such file"):
        pretrain.main(train_flags(corpus, tmp_path / "pt", "--config", tmp_path / "missing.yaml"))
    assert not {"ft", "ev", "pt"} & {p.name for p in tmp_path.iterdir()}


def test_a_kept_folder_records_package_versions_and_the_code_commit(finished, tmp_path, monkeypatch):
    from importlib import metadata
    from harness import provenance
    software = read_json(finished[0] / "finetune" / "training.json")["software"]
    assert software["packages"]["torch"] == metadata.version("torch") == torch.__version__
    for name in ("transformers", "sentencepiece", "fasttext", "HanTa", "jieba"):
        assert software["packages"][name] == metadata.version(name)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=HERE, capture_output=True, text=True)
    assert software["code"] == ({"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
                                if head.returncode == 0 else "not a git checkout")
    monkeypatch.setattr(provenance, "PROJECT", tmp_path)                  # a copy of the code without .git
    assert provenance.code() == "not a git checkout"
    bad = edited_folder(finished[0] / "finetune", tmp_path / "bad",
                        training=lambda t: t["software"]["code"].update(dirty="yes") if isinstance(
                            t["software"]["code"], dict) else t["software"].update(code=1))
    with pytest.raises(SystemExit, match=r"training.json' field software.code"):
        hf_folder.read(bad, "finetune")


def test_model_card_front_matter_and_results_round_trip_through_huggingface_hub(finished, corpus):
    from huggingface_hub import ModelCard
    out = finished[0]
    loaded = ModelCard.load(out / "finetune" / "README.md")
    data_ = loaded.data
    assert (data_.library_name, data_.language, data_.license, data_.datasets) == ("pytorch", ["de"], "other",
                                                                                    ["synthetic"])
    assert data_.base_model is None and data_.pipeline_tag is None           # tiny: seeded random bases
    hyps = (out / "test.hyp.txt").read_text(encoding="utf-8").splitlines()
    refs = (out / "test.ref.txt").read_text(encoding="utf-8").splitlines()
    raw = {(r.metric_type, r.metric_name): r for r in data_.eval_results if r.metric_args["scoring"] == "raw"}
    assert {r.dataset_split for r in data_.eval_results} == {"test"} and len(raw) == 5
    for n in range(1, 5):
        bleu = sacrebleu.BLEU(max_ngram_order=n)
        assert raw["bleu", f"BLEU-{n}"].metric_value == round(bleu.corpus_score(hyps, [refs]).score, 2)
        assert raw["bleu", f"BLEU-{n}"].metric_config == str(bleu.get_signature())     # nrefs:1|case:mixed|...
    assert raw["rouge", "ROUGE-L"].metric_value == round(metrics.rouge_l(hyps, refs), 2)
    again = ModelCard(str(loaded))                                          # written, read back: the same data
    assert again.data.to_dict() == data_.to_dict() and again.data.eval_results == data_.eval_results
    assert "`" + read_json(out / "finetune" / "config.json")["bases"]["dino"]["sha256"][:16] + "`" in loaded.text
    # the paper preset's bases: hub ids are the Hub's base_model; a local folder is said in the text only
    config = read_json(out / "finetune" / "config.json")
    training = read_json(out / "finetune" / "training.json")
    config["bases"]["dino"]["hub_id"], config["bases"]["mbart"]["hub_id"] = "facebook/dinov2-small", "facebook/x"
    assert ModelCard(card.model_card(config, training, "phoenix14t")).data.base_model == [
        "facebook/dinov2-small", "facebook/x"]
    config["bases"]["mbart"].update(hub_id=None, folder="my-mbart")
    local = ModelCard(card.model_card(config, training, "phoenix14t"))
    assert local.data.base_model == ["facebook/dinov2-small"] and "local base folders (mbart)" in local.text
    assert local.data.license == "cc-by-nc-sa-3.0" and local.data.license_name is None


def test_the_card_is_written_from_its_data_whatever_the_dataset_folder_is_called(finished, corpus, tmp_path):
    """A dataset folder named like the card's sections and fences (issue X, case 8): each split's results are
    kept when another is added, and the flags read back as written."""
    from huggingface_hub import ModelCard
    out, odd = tmp_path / "run", "ev## Evaluation\n```\n### test"
    kept = hf_folder.read(edited_folder(finished[0] / "finetune", out / "finetune",
                                        training=lambda t: t["flags"].update(data=odd)), "finetune")
    scores = {"bleu1": 40.0, "bleu2": 30.0, "bleu3": 20.0, "bleu4": 10.0, "rouge": 35.0}
    signature = {"bleu": "nrefs:1|tok:13a", "rouge": "words"}
    evaluate.update_card(kept, out, "test", card.results("test", "synthetic", {"raw": scores}, signature))
    evaluate.update_card(kept, out, "dev", card.results("dev", "synthetic", {"raw": scores | {"bleu4": 12.5}},
                                                        signature))
    evaluate.update_card(kept, out, "test", card.results("test", "synthetic", {"raw": scores | {"bleu4": 11.0}},
                                                         signature))
    loaded = ModelCard.load(out / "finetune" / "README.md")
    bleu4 = {r.dataset_split: r.metric_value for r in loaded.data.eval_results if r.metric_name == "BLEU-4"}
    assert bleu4 == {"test": 11.0, "dev": 12.5} and len(loaded.data.eval_results) == 10
    flags_block = loaded.text.split("(`training.json`; repeat the run with `--config FOLDER`):\n\n")[1]
    fence = flags_block.split("\n")[0]
    assert fence == "````" and json.loads(flags_block[len(fence):].split(fence)[0])["data"] == odd
    assert loaded.text.count("| raw | 40.00 | 30.00 | 20.00 |") == 2


def test_the_docs_example_loads_in_one_call_and_translates(finished, corpus, tmp_path, monkeypatch, capsys):
    """docs/checkpoints.md's Python example, run as it is written in a folder holding its two paths (the tiny
    run's fine-tuned folder, a test video as the frame folder clip.mp4): it prints the translation that the
    folder read and built step by step gives."""
    page = (Path(HERE) / "docs" / "checkpoints.md").read_text(encoding="utf-8")
    example = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    assert len(example) == 1 and "from_pretrained(" in example[0]
    shutil.copytree(finished[0] / "finetune", tmp_path / "runs" / "phoenix14t-paper" / "finetune")
    copy_test_video(corpus, tmp_path / "clip.mp4")
    monkeypatch.chdir(tmp_path)
    exec(compile(example[0], "docs/checkpoints.md", "exec"), {})
    printed = capsys.readouterr().out
    kept = hf_folder.read(tmp_path / "runs" / "phoenix14t-paper" / "finetune", "finetune")
    net = hf_folder.build(kept, "finetune")
    frames = data.SignVideos(corpus, "test", size=kept.cfg.image_size)[1]["frames"]
    batch = data.collate([{"name": "clip", "translation": "", "frames": frames}])
    assert printed == run.translate(net, [batch], kept.tok, "cpu", num_beams=4, max_new_tokens=150)[0][0] + "\n"
    model_, tok = hf_folder.from_pretrained(finished[0] / "pretrain", "pretrain")
    assert isinstance(model_, model.PretrainModel) and not model_.training
    assert tok.fingerprint() == kept.tok.fingerprint()
    with pytest.raises(SystemExit, match=r"from_pretrained: checkpoint not found: 'nowhere'"):
        hf_folder.from_pretrained("nowhere")


def test_resume_without_the_last_state_keeps_the_kept_weights(finished, corpus, tmp_path):
    out = shutil.copytree(finished[0], tmp_path / "run")
    (out / "pretrain.last.pt").unlink()
    before = digests(out)
    with pytest.raises(SystemExit) as e:
        pretrain.main(train_flags(corpus, out, "--epochs", "1", "--resume"))
    assert f"--resume: '{out}' holds pretrain but not pretrain.last.pt" in str(e.value)
    assert "--overwrite" in str(e.value)
    assert digests(out) == before                                                    # nothing replaced or moved
    out = shutil.copytree(finished[0], tmp_path / "run2")
    for name in ("finetune-stage1.last.pt", "finetune-stage2.last.pt"):
        (out / name).unlink()
    before = digests(out)
    with pytest.raises(SystemExit) as e:
        finetune.main(train_flags(corpus, out, "--stage1-epochs", "1", "--stage2-epochs", "1", "--cache-features",
                                  "--resume"))
    assert f"--resume: '{out}' holds finetune but not finetune-stage1.last.pt or finetune-stage2.last.pt" \
        in str(e.value)
    assert digests(out) == before
    outdir.release()


def test_links_planted_in_out_are_refused_and_never_followed(corpus, tmp_path):
    out, precious = tmp_path / "run", tmp_path / "precious.txt"
    out.mkdir()
    precious.write_text("PRECIOUS\n")
    (out / ".lock").symlink_to(precious)
    with pytest.raises(SystemExit, match=f"'{out / '.lock'}' cannot be this run's lock file .*a symbolic link to "
                       f"'{precious}'\\): remove it; nothing was written"):
        pretrain.main(train_flags(corpus, out, "--epochs", "1"))
    (out / ".lock").unlink()
    (out / "clip.glosses.png").symlink_to(precious)
    with pytest.raises(SystemExit, match=f"'{out / 'clip.glosses.png'}' is a symbolic link \\(to '{precious}'\\): "
                       "this project never writes through links"):
        files.atomic_write(out / "clip.glosses.png", lambda tmp: tmp.write_text("picture"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "cache").symlink_to(elsewhere)
    with pytest.raises(SystemExit, match=f"'{out / 'cache'}' is a symbolic link \\(to '{elsewhere}'\\)"):
        pseudogloss_cache.pseudoglosses(corpus, cache_dir=out / "cache")
    assert precious.read_text() == "PRECIOUS\n" and list(elsewhere.iterdir()) == []
    outdir.release()


def test_out_is_a_folder_apart_from_the_dataset_and_the_video(finished, corpus, tmp_path):
    root = copy_corpus(corpus, tmp_path)
    before = digests(root)
    for out, how in ((root, "is"), (root / "runs" / "a", "is inside")):
        with pytest.raises(SystemExit, match=f"--out '{out}' {how} the dataset root '{root}', which is only read"):
            pretrain.main(train_flags(root, out, "--epochs", "1"))
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(SystemExit, match=f"--out '{afile}' exists and is not a folder \\(a file\\)"):
        pretrain.main(train_flags(root, afile, "--epochs", "1"))
    video = root / data.FRAME_DIR / "test" / data.read_split(root, "test")[0]["name"]
    with pytest.raises(SystemExit, match=f"--out '{video}' is the --video folder '{video}', which is only read"):
        analysis.main(flags(root, video, "--checkpoint", finished[0] / "finetune", "--pretrained",
                            finished[0] / "pretrain", "--video", video))
    assert digests(root) == before and not any(p.name == ".lock" for p in root.rglob("*"))
    outdir.release()


def test_a_refused_resume_moves_nothing_and_shows_values_as_given(finished, corpus, tmp_path):
    out = shutil.copytree(finished[0], tmp_path / "run", ignore=shutil.ignore_patterns(".lock", "replaced-*"))
    (tmp_path / "my_corpus").symlink_to(corpus)
    before = digests(out)
    with pytest.raises(SystemExit) as refused:
        pretrain.main(train_flags(tmp_path / "my_corpus", out, "--epochs", "1", "--resume", "--lr", "0.01"))
    message = str(refused.value)  # --data as recorded: the dataset's name or layout, never its path
    assert "--data: 'synthetic' -> 'phoenix14t'" in message and "my_corpus" not in message
    assert "--lr: 0.0003 -> 0.01" in message and message.endswith("nothing was moved aside")
    after = digests(out)
    assert {k: v for k, v in after.items() if not k.startswith("cache")} == \
        {k: v for k, v in before.items() if not k.startswith("cache")} and not list(out.glob("replaced-*"))
    outdir.release()


def test_atomic_write_replaces_files_and_folders_whole(tmp_path, monkeypatch):
    def folder_of(files):
        def write(tmp):
            tmp.mkdir()
            for name, text in files.items():
                (tmp / name).write_text(text)
        return write
    pack = tmp_path / "sub" / "pack"
    files.atomic_write(pack, folder_of({"a": "1", "b": "2"}))
    files.atomic_write(pack, folder_of({"c": "3"}))                    # a folder replaces a folder, whole
    assert {p.name: p.read_text() for p in pack.iterdir()} == {"c": "3"}

    def broken(tmp):
        folder_of({"half": "x"})(tmp)
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write(pack, broken)
    assert [p.name for p in pack.iterdir()] == ["c"] and [p.name for p in (tmp_path / "sub").iterdir()] == ["pack"]
    files.atomic_write(tmp_path / "f.txt", lambda tmp: tmp.write_text("x"))
    assert (tmp_path / "f.txt").read_text() == "x"
    # one root resolver: a generated corpus that is not there names the command that makes it
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="`python -m tools.synthetic --setting synthetic-hard`"):
        data.resolve_root("synthetic-hard")
    with pytest.raises(FileNotFoundError, match="`python -m tools.synthetic`"):
        data.resolve_root("synthetic")
    assert set(synthetic.SETTINGS) == set(data.SYNTHETIC)


def fake_kept_folder(folder):
    """A folder with a kept-weights folder's files (hf_folder.CONFIG, TRAINING, WEIGHTS), as <run>/pretrain is."""
    folder.mkdir(parents=True)
    for name in ("config.json", "training.json", "model.safetensors"):
        (folder / name).write_text("{}")
    return folder


def test_out_inside_a_kept_folder_is_refused_before_anything_is_written(corpus, tmp_path):
    kept = fake_kept_folder(tmp_path / "run" / "pretrain")
    before = digests(tmp_path / "run")
    for out, how in ((kept, "is"), (kept / "nested", "is inside")):
        with pytest.raises(SystemExit, match=f"--out '{out}' {how} the kept weights '{kept}' of a run"):
            pretrain.main(train_flags(corpus, out, "--epochs", "1"))
    assert digests(tmp_path / "run") == before and not (kept / "nested").exists() and not (kept / ".lock").exists()


def dead_pid() -> int:
    """A process id no process has now (files._process_alive's own test, by os.kill)."""
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_a_replacement_killed_between_its_renames_is_put_back(tmp_path):
    # what atomic_write leaves when killed after setting <out>/pretrain aside and before renaming the new one in
    out = tmp_path / "run"
    hidden = out / f".pretrain.old{dead_pid()}-0badc0de"
    hidden.mkdir(parents=True)
    (hidden / "config.json").write_text("the best weights")
    (out / "pretrain.last.pt").write_bytes(b"state")
    outdir.claim(out, "pretrain", resume=True, overwrite=False)   # the next start, with --resume
    outdir.release(out)
    assert (out / "pretrain" / "config.json").read_text() == "the best weights" and not hidden.exists()
    # the same kill, then a save that fails: the old copy is back, not deleted with the temporaries
    hidden = tmp_path / f".pack.old{dead_pid()}-0badc0de"
    hidden.mkdir()
    (hidden / "a").write_text("old")

    def broken(tmp):
        tmp.mkdir()
        raise OSError("disk full")
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write(tmp_path / "pack", broken)
    assert (tmp_path / "pack" / "a").read_text() == "old" and not hidden.exists()


def test_control_characters_in_a_translation_are_named_at_read_time(corpus, tmp_path):
    def nul(root):
        path = data.annotation_path(root, "dev")
        lines = path.read_text(encoding="utf-8").splitlines()
        lines[2] = lines[2][:-3] + "\x00" + lines[2][-3:]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    root = copy_corpus(corpus, tmp_path, nul)
    with pytest.raises(SystemExit, match=f"'{data.annotation_path(root, 'dev')}', line 3, field translation: "
                                         "control character U\\+0000 at position"):
        data.read_splits(root, ["train"])
    labels = {"info": [{"name": "S000000_P0000_T00", "label_char": ["今", "\x1b", "天"]}]}
    (tmp_path / "csl" / "sentence_label").mkdir(parents=True)
    with open(tmp_path / "csl" / "sentence_label" / "csl2020ct_v2.pkl", "wb") as f:
        pickle.dump(labels, f)
    with pytest.raises(ValueError, match=r"info\[0\] \('S000000_P0000_T00'\): control character U\+001B"):
        from corpora import csl_daily
        csl_daily.read_labels(tmp_path / "csl" / "sentence_label" / "csl2020ct_v2.pkl")


def test_an_empty_root_variable_or_data_flag_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PHOENIX14T_ROOT", "")
    with pytest.raises(FileNotFoundError, match="\\$PHOENIX14T_ROOT is set but empty: set it to the dataset's "
                                                "folder .*, or unset it to read data/phoenix14t"):
        data.resolve_root("phoenix14t")
    with pytest.raises(FileNotFoundError, match="--data is empty"):
        data.resolve_root("")


def test_config_numbers_are_checked_before_a_model_is_built(finished, tmp_path, monkeypatch):
    source = finished[0] / "finetune"
    cases = [(dict(temporal_layers=300), "field model.temporal_layers is 300: more than 256 layers"),
             (dict(temporal_heads=0), "field model.temporal_heads is 0: a width, size or count must be positive"),
             (dict(image_size=0), "field model.image_size is 0: a width"),
             (dict(dino_arch={"patch_size": 0}), "field model.dino_arch.patch_size is 0: a width"),
             (dict(temporal_heads=3), "field model.temporal_heads 3 does not divide model.frame_dim 64"),
             (dict(image_size=36), "field model.dino_arch.patch_size 8 does not divide model.image_size 36"),
             (dict(mbart_arch={"encoder_attention_heads": 5}),
              "field model.mbart_arch.encoder_attention_heads 5 does not divide model.mbart_arch.d_model 64"),
             (dict(frame_dim=65536, temporal_mlp=65536), "gives a model of about .* weights")]
    monkeypatch.setattr(model, "build_translation_model", lambda *a, **k: pytest.fail("built before the checks"))
    for i, (fields, message) in enumerate(cases):
        def edit(c):
            for k, v in fields.items():
                c["model"][k] = c["model"][k] | v if isinstance(v, dict) else v
        folder = edited_folder(source, tmp_path / str(i), config=edit)
        with pytest.raises(SystemExit, match=f"config.json' {message}"):
            hf_folder.read(folder, "finetune")
    monkeypatch.undo()
    # the estimate bounds the models torch builds from above, within a factor 1.6 (paper: 550M; 346M and 403M)
    for preset in ("tiny", "paper"):
        cfg = dataclasses.replace(model.PRESETS[preset], vocab_size=2172, pretrained=False)
        fields = dataclasses.asdict(cfg)
        with torch.device("meta"):
            built = [sum(t.numel() for t in build(cfg).state_dict().values())
                     for build in (model.build_pretrain_model, model.build_translation_model)]
        estimate = limits.estimate_parameters(lambda n: fields[n] if "." not in n else
                                              fields[n.split(".")[0]][n.split(".")[1]])
        assert max(built) <= estimate <= 1.6 * max(built), (preset, built, estimate)


def safetensors_file(path, header: bytes):
    path.write_bytes(len(header).to_bytes(8, "little") + header)
    return path


def test_crafted_headers_and_deep_json_are_refused_with_a_message(tmp_path):
    cases = [(b'{"__metadata__": {"format": 1}}', "__metadata__ that is not an object of strings"),
             (b'{"__metadata__": ["pt"]}', "__metadata__ that is not an object of strings"),
             (b'\xef\xbb\xbf{"__metadata__": {"format": "pt"}}', "UTF-8 byte-order mark"),
             (b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "its header nests deeper than 32 levels")]
    for i, (header, message) in enumerate(cases):
        with pytest.raises(SystemExit, match=message):
            hf_folder.check_header(safetensors_file(tmp_path / f"{i}.safetensors", header), {})
    deep = tmp_path / "config.json"
    deep.write_text('{"model": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    with pytest.raises(SystemExit, match="config.json' is not JSON \\(ValueError: config.json nests deeper than 32"):
        hf_folder.read_json(deep)
    assert limits.loads('{"a": "[[[[", "b": [[1]]}', "x") == {"a": "[[[[", "b": [[1]]}  # brackets in strings


def test_a_full_disk_reported_by_safetensors_is_a_clear_error(finished, corpus, tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError
    out = shutil.copytree(finished[0], tmp_path / "run")
    kept = hf_folder.read(out / "finetune", "finetune")
    net = hf_folder.build(kept, "finetune")
    setup = run.Setup(cli.parse(evaluate.flags(), flags(corpus, out)), kept.cfg, corpus, kept.tok, "cpu")
    before = digests(out)

    def full(state, path, metadata=None):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No '
                              'space left on device" })')
    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(SystemExit, match=f"could not write '{out / 'finetune'}' \\(the disk is full\\): "
                                         "SafetensorError"):
        hf_folder.save(out / "finetune", net, setup, kept.training | {"kind": "finetune"},
                       {n for n, p in net.named_parameters() if p.requires_grad})
    assert digests(out) == before


def test_links_at_the_stages_files_are_refused_when_out_is_claimed(finished, corpus, tmp_path, monkeypatch):
    out = shutil.copytree(finished[0], tmp_path / "run", ignore=shutil.ignore_patterns(".lock"))
    elsewhere = shutil.copytree(out / "pretrain", tmp_path / "elsewhere")
    shutil.rmtree(out / "pretrain")
    (out / "pretrain").symlink_to(elsewhere)
    monkeypatch.setattr(run, "loader", lambda *a, **k: pytest.fail("trained before the link was refused"))
    with pytest.raises(SystemExit, match=f"'{out / 'pretrain'}' is a symbolic link \\(to '{elsewhere}'\\)"):
        pretrain.main(train_flags(corpus, out, "--epochs", "1", "--resume"))
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "cache").symlink_to(elsewhere)
    with pytest.raises(SystemExit, match=f"'{fresh / 'cache'}' is a symbolic link .*nothing was written"):
        pretrain.main(train_flags(corpus, fresh, "--epochs", "1"))
    assert sorted(p.name for p in fresh.iterdir()) == ["cache"]
    outdir.release()


def test_max_new_tokens_beyond_the_decoders_positions_is_refused_first(finished, corpus, tmp_path, monkeypatch):
    kept = hf_folder.read(finished[0] / "finetune", "finetune")
    # 512 positions (the tiny preset): 512 new tokens fit, 513 raise IndexError in transformers' generate
    evaluate.check_max_new_tokens(argparse.Namespace(max_new_tokens=512), kept)
    monkeypatch.setattr(run, "translate", lambda *a, **k: pytest.fail("translated before the check"))
    with pytest.raises(SystemExit, match="--max-new-tokens 600: the decoder of .* has 512 positions"):
        evaluate.main(flags(corpus, tmp_path / "ev", "--checkpoint", finished[0] / "finetune",
                            "--max-new-tokens", "600"))
    assert not (tmp_path / "ev").exists()


def test_finetune_pretrained_takes_a_hub_id(corpus, tmp_path, monkeypatch):
    import huggingface_hub
    calls = []

    def snapshot_download(repo_id, allow_patterns=None, **kwargs):
        calls.append(repo_id)
        raise huggingface_hub.errors.LocalEntryNotFoundError(f"{repo_id}: the hub is not reachable")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(SystemExit, match="--pretrained 'someone/hfa-pretrain': no such folder here, and the hub id "
                                         "could not be fetched"):
        finetune.main(train_flags(corpus, tmp_path / "ft", "--pretrained", "someone/hfa-pretrain"))
    assert calls == ["someone/hfa-pretrain"]


def test_analysis_video_is_checked_before_out_is_claimed(finished, corpus, tmp_path):
    out, clip = finished[0], copy_test_video(corpus, tmp_path / "clip", 1)
    fifo, damaged, bomb = tmp_path / "fifo.mp4", tmp_path / "damaged.mp4", copy_test_video(corpus, tmp_path / "bomb")
    os.mkfifo(fifo)
    damaged.write_bytes(b"\0" * 4096)
    png_bomb(sorted(bomb.iterdir())[0])
    for video, message in ((tmp_path / "missing.mp4", "not a video file"), (fifo, "not a video file"),
                           (damaged, "damaged.mp4"), (bomb, "")):
        with pytest.raises(SystemExit, match=f"--video '{video}' cannot be read: .*{message}.*nothing was written"):
            analysis.main(flags(corpus, tmp_path / "pic", "--checkpoint", out / "finetune", "--video", video))
        assert not (tmp_path / "pic").exists()
    with pytest.raises(SystemExit, match=f"--out '{out / 'pretrain'}' is the kept weights"):
        analysis.main(flags(corpus, out / "pretrain", "--checkpoint", out / "finetune", "--video", clip))
    assert not list((out / "pretrain").glob("*.png"))
    outdir.release()


def test_published_files_hold_no_path_of_this_machine(finished, corpus):
    out = finished[0]
    for kind in ("pretrain", "finetune"):
        training = read_json(out / kind / "training.json")
        assert training["flags"]["data"] == "synthetic" and len(training["flags"]["dataset"]) == 64
        for name in ("training.json", "config.json", "README.md"):
            text = (out / kind / name).read_text(encoding="utf-8")
            assert str(corpus) not in text and str(out) not in text and str(Path.home()) not in text, (kind, name)
    assert read_json(out / "finetune" / "training.json")["flags"]["pretrained"] is None


# ----------------------------------------------------------------------------------------------
# The tools: retrieval, localisation, a video of your own, the generated corpora, the benchmark


def test_recall_at_k_by_hand():
    sim = torch.tensor([[0.9, 0.1, 0.5],   # query 0: its match 0.9 is first         -> rank 1
                        [0.8, 0.2, 0.3],   # query 1: 0.8 and 0.3 above its 0.2       -> rank 3
                        [0.1, 0.7, 0.6]])  # query 2: 0.7 above its 0.6              -> rank 2
    assert analysis.recall_at_k(sim, ks=(1, 2, 3)) == pytest.approx({1: 100 / 3, 2: 200 / 3, 3: 100.0})
    # the other direction: columns as queries, ranks 1, 2 (0.7 above 0.2), 1
    assert analysis.recall_at_k(sim.T, ks=(1, 2)) == pytest.approx({1: 200 / 3, 2: 100.0})
    assert analysis.recall_at_k(torch.ones(4, 4), ks=(1,)) == {1: 100.0}  # ties count for the match


def test_segments_and_localisation_by_hand():
    # which frames each segment pools, against the downsampling itself: one-hot frames through avg_pool1d
    for n in (6, 7):
        pooled = F.avg_pool1d(torch.eye(n)[:, None], kernel_size=3, stride=2, padding=1)[:, 0]   # [frames, segments]
        assert pooled.shape[1] == math.ceil(n / 2)
        for j in range(pooled.shape[1]):
            assert list(analysis.segment_frames(j, n)) == pooled[:, j].nonzero().flatten().tolist()
    # 7 frames -> segments {0,1} {1,2,3} {3,4,5} {5,6}
    evidence = torch.tensor([[0.1, 0.1], [0.2, 0.3], [0.6, 0.2], [0.1, 0.0]])      # [4 segments, 2 glosses]
    spans = {0: {4, 5}, 1: {0}}
    # gloss 0 peaks in segment 2, which pools frame 4 and 5: hit; segments 2 and 3 would hit: chance 2/4
    # gloss 1 peaks in segment 1 (frames 1-3), its sign is frame 0: miss; only segment 0 would hit: chance 1/4
    assert analysis.localisation(evidence, 7, spans) == [(True, 0.5), (False, 0.25)]
    # frame numbers (1-based) to positions among the selected frames: keep frames 0, 2, 4, 6 (every 2nd)
    keep = np.array([0, 2, 4, 6])
    assert analysis.selected_spans([("a", 3, 5), ("b", 2, 2), ("zzz", 1, 7)], keep, {"a": 0, "b": 1}) == {0: {1, 2}}
    assert analysis.found_glosses(evidence, threshold=0.8, top=1) == [0]           # E-hat 1.0 and 0.6
    assert analysis.found_glosses(evidence, threshold=2.0, top=2) == [0, 1]
    assert analysis.peak_span(torch.tensor([0.0, 0.3, 0.5, 0.2, 0.3]), 9) == (1, 5)  # segments 1-2 (>= 0.25)


def test_video_file_and_frame_folder_decode_to_their_frames(tmp_path):
    y, x = np.mgrid[:48, :64]
    frames = np.stack([np.stack([(x * 4 + 8 * t) % 256, y * 5, np.full_like(x, 40 * (t % 5))], -1)
                       for t in range(12)]).astype(np.uint8)                      # smooth gradients, moving
    synthetic.write_mp4(tmp_path / "clip.mp4", frames, fps=25)
    decoded, keep, times = analysis.read_video(tmp_path / "clip.mp4")
    assert decoded.shape == frames.shape and np.allclose(times, np.arange(12) / 25)
    assert np.abs(decoded.astype(int) - frames).mean() < 3   # codec loss only (4:2:0 chroma, quantisation)
    folder = tmp_path / "frames"
    folder.mkdir()
    for t in (0, 1, 2, 10, 11):  # natural order: frame2 before frame10
        Image.fromarray(frames[t]).save(folder / f"frame{t}.png")
    decoded, keep, times = analysis.read_video(folder)
    assert times is None and np.array_equal(decoded, frames[[0, 1, 2, 10, 11]])
    with pytest.raises(FileNotFoundError, match="not a video file"):
        analysis.read_video(tmp_path / "notes.txt")


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_localisation_runs_on_the_english_and_chinese_synthetic_corpora(lang_runs, lang):
    corpus, out, result, printed, _ = lang_runs[lang]
    truth = synthetic.read_ground_truth(corpus, "test")
    pairs = {(name, g) for name, spans in truth.items() for g, _, _ in spans}
    assert len(truth) == 3
    assert "\nretrieval test (3 videos): video-to-text R@1 " in printed
    assert f"\nlocalisation test: {result['localisation']:.1f}% of {len(pairs)} (video, pseudo-gloss) pairs" in printed
    assert 0 < result["chance"] < 100


def write_vfr_mp4(path, frames, pts_ms):
    """H.264 frames whose presentation times are pts_ms (milliseconds): a variable frame rate."""
    from fractions import Fraction

    import av
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"crf": "18", "preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        for frame, pts in zip(frames, pts_ms):
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            vf.pts, vf.time_base = pts, Fraction(1, 1000)
            c.mux(s.encode(vf))
        c.mux(s.encode())


def test_video_times_language_and_claim_of_out(finished, corpus, tmp_path, capsys):
    skip = shutil.ignore_patterns(".lock", "replaced-*", "*.glosses.png")  # the finished run's, not this test's
    out = shutil.copytree(finished[0], tmp_path / "run", ignore=skip)
    video = corpus / data.FRAME_DIR / "test" / data.read_split(corpus, "test")[0]["name"]
    frames = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in decode.frame_files(video)] * 2)
    # cut from a longer recording: the first frame at 20.8 s, then frames 40 ms apart, then 1 s apart
    pts = [20800 + (i * 40 if i < 10 else 400 + (i - 10) * 1000) for i in range(len(frames))]
    write_vfr_mp4(tmp_path / "clip.mp4", frames, pts)
    capsys.readouterr()
    analysis.main(flags(corpus, out, "--video", tmp_path / "clip.mp4", "--threshold", "0", "--max-new-tokens", "2"))
    spans = re.findall(r"frames (\d+)-(\d+) \(([\d.]+)-([\d.]+) s\)", capsys.readouterr().out)
    times = [p / 1000 for p in pts] + [pts[-1] / 1000 + 1.0]    # the end of the last: plus the median gap, 1 s
    assert spans and all(float(a) == pytest.approx(times[int(i) - 1], abs=0.006) and
                         float(b) == pytest.approx(times[int(j)], abs=0.006) for i, j, a, b in spans), spans
    picture = (out / "clip.glosses.png").read_bytes()
    other = shutil.copytree(video, tmp_path / "b" / "clip")                  # another clip of the same name
    with pytest.raises(SystemExit, match=f"'{out}' already holds tools/analysis.py --video's files "
                       "\\(clip.glosses.png\\).*nothing was changed"):
        analysis.main(flags(corpus, out, "--video", other, "--max-new-tokens", "2"))
    assert (out / "clip.glosses.png").read_bytes() == picture
    analysis.main(flags(corpus, out, "--video", tmp_path / "clip.mp4", "--max-new-tokens", "2", "--overwrite"))
    assert [p.read_bytes() for p in out.glob("replaced-*/clip.glosses.png")] == [picture]
    outdir.release()
    with open(out / ".lock", "a+") as held:  # a run holding the folder (an open file of its own)
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(SystemExit, match=f"'{out}' is in use by another run"):
            analysis.main(flags(corpus, out, "--video", tmp_path / "clip.mp4", "--overwrite"))
    with pytest.raises(SystemExit) as refused:
        analysis.main(flags(corpus, out, "--video", tmp_path / "clip.mp4", "--lang", "en", "--overwrite"))
    assert str(refused.value) == ("the checkpoint's tokenizer is de_DE, --lang en asks for en (en_XX): pass the run "
                                  "and the data of one language, or drop --lang")
    outdir.release()


def corpus_digest(root):
    """sha256 over every file of a folder, names and bytes."""
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_synthetic_corpus_deterministic_and_loadable(tmp_path):
    sizes = dict(n_train=12, n_dev=3, n_test=3, frame_size=32)
    a = synthetic.make_synthetic(tmp_path / "a" / "synthetic", seed=3, **sizes)
    b = synthetic.make_synthetic(tmp_path / "b" / "synthetic", seed=3, **sizes)
    assert corpus_digest(a) == corpus_digest(b)
    assert synthetic.make_synthetic(a, seed=3, **sizes) == a  # cached: second call does not rebuild
    train = {r["translation"] for r in data.read_split(a, "train")}
    dev = [r["translation"] for r in data.read_split(a, "dev")]
    assert len(train) == 12 and len(dev) == 3 and not train & set(dev)
    train_glosses = {g for t in train for g in pseudogloss.extract(t)}
    assert all(set(pseudogloss.extract(t)) <= train_glosses for t in dev)
    ds = data.SignVideos(a, "test", size=32, train=True)
    item = ds[0]
    # training items hold the whole 256/224 resize (37 for a 32 crop); the crop is taken on the device (data.prepare)
    assert item["frames"].ndim == 4 and item["frames"].shape[1:] == (3, 37, 37) and 10 <= len(item["frames"]) <= 60
    assert item["crop"] == 32
    pg = pseudogloss_cache.pseudoglosses(a, dim=16, cache_dir=tmp_path / "cache")
    assert pg.prototypes.shape == (len(pg.vocab) + 1, 16) and not pg.prototypes[-1].any()
    assert set(pg.labels) == {r["name"] for s in data.SPLITS for r in data.read_split(a, s)}
    h = pseudogloss.multi_hot([r["name"] for r in data.read_split(a, "train")[:2]], pg)
    assert h.shape == (2, len(pg.vocab)) and h.sum() > 0
    again = pseudogloss_cache.pseudoglosses(a, dim=16, cache_dir=tmp_path / "cache")
    assert again.vocab == pg.vocab and torch.equal(again.prototypes, pg.prototypes)
    cached = torch.load(tmp_path / "cache" / "pseudoglosses-train-dev-test.pt", weights_only=True)  # all splits
    assert cached["vocab"] == pg.vocab


@pytest.mark.parametrize("setting", ["synthetic", "synthetic-hard"])
def test_ground_truth_tsv_matches_the_drawn_frames(tmp_path, setting):
    opts = {**synthetic.SETTINGS[setting], "n_train": 12, "n_dev": 3, "n_test": 3, "frame_size": 32}
    root = synthetic.make_synthetic(tmp_path / "synthetic", seed=1, **opts)
    pairs, lengths = {}, set()
    for split in data.SPLITS:
        lines = synthetic.ground_truth_path(root, split).read_text().splitlines()
        assert lines[0] == "name\tpseudogloss\tfirst\tlast"
        spans = {}
        for line in lines[1:]:
            name, gloss, first, last = line.split("\t")
            spans.setdefault(name, []).append((gloss, int(first), int(last)))
        rows = data.read_split(root, split)
        assert list(spans) == [r["name"] for r in rows]
        for row in rows:
            signs = spans[row["name"]]
            assert sorted(g for g, _, _ in signs) == sorted(pseudogloss.extract(row["translation"]))
            paths = sorted((root / data.FRAME_DIR / split / row["name"]).glob("images*.png"))
            frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
            in_sign = np.zeros(len(frames), bool)
            for gloss, first, last in signs:
                assert 1 <= first <= last <= len(frames) and not in_sign[first - 1:last].any()
                # a sign: one shape in one colour on one background, the same two colours over its whole span
                colours = {tuple(c) for f in frames[first - 1:last] for c in f.reshape(-1, 3)}
                assert len(colours) == 2, (row["name"], gloss)
                pairs.setdefault(gloss, set()).add(frozenset(colours))
                lengths.add(last - first + 1)
                in_sign[first - 1:last] = True
            assert not in_sign[0] and not in_sign[-1]
            for f in (f for f, sign in zip(frames, in_sign) if not sign):  # the rest: blocky grey noise
                assert (f[..., 0] == f[..., 1]).all() and (f[..., 1] == f[..., 2]).all() and len(np.unique(f)) > 2
    if setting == "synthetic":  # each pseudo-gloss always signed in its own colours
        assert all(len(p) == 1 for p in pairs.values()) and len({min(p) for p in pairs.values()}) == len(pairs)
        assert lengths == {4}
    else:  # performed differently each time, at varying lengths
        assert any(len(p) > 1 for p in pairs.values()) and len(lengths) > 1
    assert synthetic.read_ground_truth(root, "test") == spans and synthetic.read_ground_truth(tmp_path, "test") == {}


def decode_mp4(path) -> np.ndarray:
    """Every frame of a video file, decoded with PyAV directly (not through data.py): uint8 [N, H, W, 3]."""
    import av
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def sign_frames_are_coloured(frames, signs):
    """The generator's signs are a bright shape on a dark ground, mostly in colour (one pair is white on black),
    its non-sign frames grey noise around 110: each frame of a signed span, and only those, has a large mean
    spread between its RGB channels or nearly all its pixels near black or white."""
    spread = (frames.max(-1).astype(int) - frames.min(-1)).mean((1, 2))                # [N]
    grey = frames.mean(-1)
    extreme = ((grey < 40) | (grey > 215)).mean((1, 2))                                  # [N]
    sign_like = (spread > 25) | (extreme > 0.9)
    signed = np.zeros(len(frames), bool)
    for _, first, last in signs:
        signed[first - 1:last] = True
    return (sign_like == signed).all() and spread[~signed].max() < 10


def test_synthetic_english_corpus_is_how2sign_as_released(tmp_path):
    root = synthetic.make_corpus(tmp_path / "synthetic-en", "en", n_train=40, n_dev=4, n_test=4, frame_size=32)
    columns = ["VIDEO_ID", "VIDEO_NAME", "SENTENCE_ID", "SENTENCE_NAME", "START_REALIGNED", "END_REALIGNED", "SENTENCE"]
    quoted = 0
    for split, folder in (("train", "train"), ("dev", "val"), ("test", "test")):
        base = root / "sentence_level" / folder
        text = (base / "text/en/raw_text/re_aligned" / f"how2sign_realigned_{folder}.csv").read_text(encoding="utf-8")
        lines = text.splitlines()
        assert lines[0] == "\t".join(columns)
        quoted += sum('""red""' in line for line in lines)  # a quote inside a field: the field quoted, quote doubled
        rows = list(csv.reader(io.StringIO(text), delimiter="\t"))[1:]
        assert all(len(r) == 7 for r in rows) and len(rows) == {"train": 40}.get(split, 4)
        clips = sorted(p.name for p in (base / "rgb_front" / "raw_videos").iterdir())
        expected = [r[3] + ".mp4" for r in rows]
        if split == "train":  # the release has sentences without a clip: the last one here
            assert (base / "rgb_front/raw_videos" / expected[-1]).exists() is False
            expected = expected[:-1]
            with_clip = [e.removesuffix(".mp4") for e in expected]
        assert clips == sorted(expected)
        truth = synthetic.read_ground_truth(root, split)
        assert sorted(truth) == sorted(e.removesuffix(".mp4") for e in expected)
        for r in rows:
            if r[3] not in truth:
                continue
            assert r[0] + "-1-rgb_front" == r[1] and r[2].startswith(r[0] + "_") and float(r[4]) < float(r[5])
            assert r[6][0].isupper() and r[6].endswith(".")
            signs = truth[r[3]]
            assert sorted(g for g, _, _ in signs) == sorted(pseudogloss.extract(r[6], lang="en"))
            frames = decode_mp4(base / "rgb_front" / "raw_videos" / (r[3] + ".mp4"))
            assert signs[-1][2] < len(frames) and sign_frames_are_coloured(frames, signs)
    assert quoted >= 1
    names = [r[3] for r in csv.reader(io.StringIO(how2sign.split_file(root, "train").read_text(encoding="utf-8")),
                                      delimiter="\t")][1:]
    assert [r["name"] for r in data.read_split(root, "train")] == names      # every sentence has its full video
    shutil.move(root / "video_level", tmp_path / "elsewhere")
    assert [r["name"] for r in data.read_split(root, "train")] == with_clip  # the clips: the row without one skipped


def test_how2sign_sentences_are_cut_from_the_full_videos_by_the_realigned_times(tmp_path, capsys):
    root = synthetic.make_corpus(tmp_path / "synthetic-en", "en", n_train=6, n_dev=2, n_test=2, frame_size=32)
    table = how2sign.split_file(root, "train")
    lines = table.read_text(encoding="utf-8").splitlines()
    rows = list(csv.reader(lines[1:], delimiter="\t"))
    clips = how2sign.clips_folder(root, "train")
    ds = data.SignVideos(root, "train", size=32)
    assert ds.segments[rows[1][3]] == (float(rows[1][4]), float(rows[1][5])) and len(ds) == 6
    assert "6 of 6 sentences cut from the full-length videos" in capsys.readouterr().err
    for r in rows[:5]:                       # the cut is the clip: the same frames, up to the two encodings' loss
        cut = np.stack(list(decode.iter_video(ds.videos[r[3]], None, None, None, *ds.segment(r[3]))))
        clip = decode_mp4(clips / f"{r[3]}.mp4")
        assert cut.shape == clip.shape and np.abs(cut.astype(int) - clip).mean() < 3, r[3]
    folder = pack.pack_split(root, "train", ds.rows, tmp_path / "packs", workers=1)          # cut once, here
    packed = data.SignVideos(root, "train", size=32, packed=True, packed_dir=tmp_path / "packs")
    assert json.loads((folder / "index.json").read_text())["cut"] == "realigned"
    assert [packed.pack.n_frames(r[3]) for r in rows[:5]] == [len(decode_mp4(clips / f"{r[3]}.mp4")) for r in rows[:5]]
    # a realigned end past its video's end, and a missing video: counted per split, the sentences skipped
    video = ds.videos[rows[0][3]]
    duration = decode.video_duration(video)
    rows[3][5] = f"{duration + 0.5:.2f}"                                 # rows 0-3 share the first video
    rows[2][5] = rows[2][4]                                              # ends where it starts
    table.write_text("\n".join([lines[0]] + ["\t".join(r) for r in rows]) + "\n", encoding="utf-8")
    ds.videos[rows[4][3]].unlink()                                       # rows 4-5: the second video
    capsys.readouterr()
    assert [r["name"] for r in data.read_split(root, "train")] == [r[3] for r in rows[:2]]
    assert ("train (train): 2 of 6 sentences cut from the full-length videos in "
            f"'{video.parent}' by their realigned times; skipped: 2 without their video, 1 past their video's end, "
            "1 ending before they start" in capsys.readouterr().err)
    assert check.check_videos(root, splits_of(root, ["train"])) == []


@pytest.mark.parametrize("column,value", [(5, "nan"), (4, "-5"), (4, "-inf"), (4, "nan"), (5, "inf")])
def test_how2sign_times_that_are_no_times_are_refused_naming_the_line(tmp_path, column, value):  # X cases 6, 12
    root = synthetic.make_corpus(tmp_path / "synthetic-en", "en", n_train=3, n_dev=1, n_test=1, frame_size=32)
    table = how2sign.split_file(root, "train")
    lines = table.read_text(encoding="utf-8").splitlines()
    row = lines[2].split("\t")
    row[column] = value
    table.write_text("\n".join([lines[0], lines[1], "\t".join(row), *lines[3:]]) + "\n", encoding="utf-8")
    key = ("START_REALIGNED", "END_REALIGNED")[column - 4]
    with pytest.raises(SystemExit, match=f"'{table}', line 3: {key} '{value}' is not a time in seconds \\(a finite "
                                         "number, 0 or more\\)"):
        data.read_splits(root, ["train"])


def test_a_how2sign_sentence_holding_no_frame_is_skipped_and_counted(tmp_path, capsys):  # X case 13
    root = synthetic.make_corpus(tmp_path / "synthetic-en", "en", n_train=3, n_dev=1, n_test=1, frame_size=32)
    table = how2sign.split_file(root, "train")
    lines = table.read_text(encoding="utf-8").splitlines()
    row = lines[2].split("\t")
    video = how2sign.videos_folder(root, "train") / f"{row[1]}.mp4"
    times = []
    for _ in decode.iter_video(video, keep=set(), times=times):
        pass
    row[4], row[5] = f"{times[3] + 0.25 * (times[4] - times[3]):.4f}", f"{times[3] + 0.75 * (times[4] - times[3]):.4f}"
    table.write_text("\n".join([lines[0], lines[1], "\t".join(row), *lines[3:]]) + "\n", encoding="utf-8")
    capsys.readouterr()
    names = [r["name"] for r in data.read_split(root, "train")]
    assert row[3] not in names and len(names) == 2
    assert "skipped: 0 without their video, 0 past their video's end, 0 ending before they start, 1 holding no " \
           "frame" in capsys.readouterr().err
    row[5] = f"{times[4] + 0.01:.4f}"                                 # one frame: kept
    table.write_text("\n".join([lines[0], lines[1], "\t".join(row), *lines[3:]]) + "\n", encoding="utf-8")
    ds = data.SignVideos(root, "train", size=32)
    assert len(ds) == 3 and ds[1]["frames"].shape[0] == 1


def test_synthetic_chinese_corpus_is_csl_daily_as_released(tmp_path):
    import pickle
    root = synthetic.make_corpus(tmp_path / "synthetic-zh", "zh", n_train=12, n_dev=3, n_test=3, frame_size=32)
    with open(root / "sentence_label" / "csl2020ct_v2.pkl", "rb") as f:
        labels = pickle.load(f)
    assert {"info", "gloss_map", "char_map", "word_map"} <= set(labels)
    split_lines = (root / "sentence_label" / "split_1.txt").read_text(encoding="utf-8").splitlines()
    assert split_lines[0] == "name|split"
    split_of = dict(line.split("|") for line in split_lines[1:])
    assert sorted(split_of.values()) == ["dev"] * 3 + ["test"] * 3 + ["train"] * 12
    assert [e["name"] for e in labels["info"]] == list(split_of)
    truth = {s: synthetic.read_ground_truth(root, s) for s in data.SPLITS}
    for entry in labels["info"]:
        sentence = "".join(entry["label_char"])
        assert "".join(entry["label_word"]) == sentence and all(len(c) == 1 for c in entry["label_char"])
        assert "在" in entry["label_word"] and {"signer", "time", "label_gloss"} <= set(entry)
        files = sorted(p.name for p in (root / "sentence" / "frames_512x512" / entry["name"]).iterdir())
        assert files == [f"{t:06d}.jpg" for t in range(entry["length"])]
        signs = truth[split_of[entry["name"]]][entry["name"]]
        assert [g for g, _, _ in signs] == entry["label_gloss"]
        assert sorted(entry["label_gloss"]) == sorted(pseudogloss.extract(sentence, lang="zh"))
        frames = np.stack([np.asarray(Image.open(root / "sentence/frames_512x512" / entry["name"] / f)) for f in files])
        assert signs[-1][2] < len(frames) and sign_frames_are_coloured(frames, signs)
    rows = data.read_split(root, "dev")
    assert [r["translation"] for r in rows] == ["".join(e["label_char"]) for e in labels["info"][12:15]]


def test_fullsize_builds_each_layout_at_a_share_of_the_real_counts(tmp_path, capsys):
    from tools import fullsize
    counts = {"phoenix14t": (7096, 519, 642), "csl-daily": (18401, 1077, 1176)}      # the releases' videos
    for name, real in counts.items():
        fullsize.main(["--dataset", name, "--root", str(tmp_path / name), "--fraction", "0.002", "--workers", "1"])
        rows = splits_of(tmp_path / name, data.SPLITS)
        assert [len(rows[s]) for s in data.SPLITS] == [round(n * 0.002) for n in real]
        assert check.check_videos(tmp_path / name, rows) == []
    frames = [len(decode.frame_files(r["video"])) for r in rows["train"]]
    assert min(frames) == 30 and max(frames) == 400      # CSL-Daily's assumed range, both ends drawn once
    fullsize.main(["--dataset", "how2sign", "--root", str(tmp_path / "h2s"), "--fraction", "0.01", "--workers", "1"])
    capsys.readouterr()
    rows = splits_of(tmp_path / "h2s", data.SPLITS)      # 31,165 / 1,741 / 2,357 rows; 117 / 2 / 14 without a clip
    assert [len(rows[s]) for s in data.SPLITS] == [312 - 1, 17, 24] and "1 of 312 sentences" in capsys.readouterr().err
    given = tmp_path / "given"                          # real names, sentences and frame counts where given
    given.mkdir()
    for split in data.SPLITS:
        (given / f"PHOENIX-2014-T.{split}.corpus.csv").write_text(
            "name|video|start|end|speaker|orth|translation\n" + f"{split}_a|x|-1|-1|S|X|heute regen\n"
            + f"{split}_b|x|-1|-1|S|X|morgen sonne\n", encoding="utf-8")
    (given / "frame_counts.tsv").write_text("split\tname\tnum_frames\ntrain\ttrain_a\t5\ntrain\ttrain_b\t7\n")
    fullsize.main(["--dataset", "phoenix14t", "--root", str(tmp_path / "ph"), "--annotations", str(given),
                   "--workers", "1"])
    rows = data.read_split(tmp_path / "ph", "train")
    assert [(r["name"], r["translation"], len(decode.frame_files(r["video"]))) for r in rows] == \
        [("train_a", "heute regen", 5), ("train_b", "morgen sonne", 7)]
    assert [r["name"] for r in data.read_split(tmp_path / "ph", "dev")] == ["dev_a", "dev_b"]   # counts drawn


def test_startup_stops_at_the_first_step_and_reports_its_cost(corpus, finished, tmp_path):
    out, _ = finished
    run_ = subprocess.run([sys.executable, "-m", "tools.startup", "evaluate.py",
                           *flags(corpus, tmp_path / "ev", "--checkpoint", out / "finetune", "--workers", "1")],
                          cwd=HERE, capture_output=True, text=True, timeout=300)
    assert run_.returncode == 0, run_.stderr
    report = json.loads(run_.stdout.strip().splitlines()[-1])
    assert report["calls"]["corpora.check.check_videos"]["calls"] == 1 and report["seconds_to_first_step"] > 0
    assert report["calls"]["data.read_split"]["calls"] >= 1 and len(report["workers"]) == 1
    assert report["workers"][0]["vmhwm_mib"] > 0 and not (tmp_path / "ev" / "test.hyp.txt").exists()  # stopped


def test_flops_of_temporal_encoder_by_hand():
    cfg = model.get_config("tiny", vocab_size=100)          # width 64, MLP 128, 4 blocks, pooled after block 2
    D, M, B, T = 64, 128, 2, 10
    # one block over t steps: q,k,v,o projections 4 * 2tD^2, scores q k^T and p v 2 * 2t^2 D, MLP 2 * 2tDM
    block = lambda t: B * (4 * 2 * t * D * D + 2 * 2 * t * t * D + 2 * 2 * t * D * M)
    # 10 frames -> floor(10/2) + 1 = 6 segments; then the output projection to the LLM width (64 in tiny)
    assert benchmark.temporal_flops(cfg, B, T) == 2 * block(10) + 2 * block(6) + B * 2 * 6 * D * 64
    assert benchmark.mm(3, 5, 7) == 210
    # against torch's own count of the running module's forward; torch's counter skips the masked scaled-dot-product
    # attention on CPU (this torch), so its score/value matmuls are added by hand
    enc = model.TemporalEncoder(cfg)
    with FlopCounterMode(display=False) as counter:
        enc(torch.randn(B, T, D), torch.ones(B, T, dtype=torch.bool))
    attention = B * 2 * 2 * (2 * 10 * 10 + 2 * 6 * 6) * D
    flops = benchmark.temporal_flops(cfg, B, T)
    assert counter.get_total_flops() in (flops, flops - attention)


def test_flops_per_step_multipliers():
    cfg = model.get_config("paper", pretrained=False)
    pre = benchmark.flops_per_step(cfg, "pretrain", 2, 8, 5, 2172, 2322)
    text = 12 * (2 * 10 * 4 * 1024 * 1024 + 2 * 2 * 10 * 5 * 1024 + 2 * 2 * 10 * 1024 * 4096)  # 12 layers, B*L = 10
    assert pre["text encoder (x1, no grad)"] == text
    fine = benchmark.flops_per_step(cfg, "finetune", 2, 8, 5, 2172, 2322)
    assert fine["output projection (x2)"] == 2 * 2 * 10 * 2172 * 1024          # frozen, grads flow: x2
    assert fine["mapper (x3)"] == 3 * 2 * (2 * 5) * 1024 * 1024                 # trained: x3, T = floor(8/2) + 1
    assert benchmark.peak_flops("NVIDIA H100 80GB HBM3") == 989e12 and benchmark.peak_flops("x", 1.0) == 1.0


def test_peak_bytes_counts_each_live_storage_once_by_hand():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        tracker = memory.PeakBytes(round_to=512)
        weight = torch.empty(100, 10)                                   # 4,000 B, there before: 4,096 in blocks
        tracker.track([weight])
        with tracker:
            a = torch.empty(1000)                                       # 4,000 B -> 4,096
            view = a[:10]                                               # a view: no storage of its own
            b = torch.empty(500, dtype=torch.float16)                   # 1,000 B -> 1,024
            del a, view                                                 # a's storage dies
            c = torch.empty(3000, dtype=torch.uint8)                    # 3,000 B -> 3,072
    assert tracker.peak == 4096 + 4096 + 1024 and tracker.live == 4096 + 1024 + 3072
    assert b.dtype == torch.float16 and c.numel() == 3000


@pytest.mark.slow
def test_simulated_step_matches_the_resident_memory_of_a_real_cpu_run():
    """Independent of the tracker: the real step's peak resident memory above idle, in a fresh process."""
    r = memory.check(memory.Setting("pretrain", batch_size=16, frames=115, precision="fp32"), "tiny")
    assert r["real"] > 100 * 2**20                                      # far above the noise of a process
    assert 0.85 < r["simulated"] / r["real"] < 1.15
    assert r["weights"] == pytest.approx(r["real_weights"], rel=0.05)


def test_memory_command_names_the_cards_that_fit_and_refuses_uneven_micro_batches(capsys):
    assert memory.fits(int(0.9 * 24 * 2**30)) == "24 GB, 40 GB, 80 GB"    # 90% of 24 GiB: fits
    assert memory.fits(int(0.9 * 24 * 2**30) + 1) == "40 GB, 80 GB"
    assert memory.fits(73 * 2**30) == "none of 24/40/80 GB"                # above 90% of 80 GiB (72 GiB)
    with pytest.raises(SystemExit, match="--batch-size 16 does not split into --accumulation 3"):
        memory.main(["--batch-size", "16", "--accumulation", "3"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_epoch_line_carries_the_cuda_peak(tmp_path, capsys):
    setup = argparse.Namespace(args=argparse.Namespace(out=tmp_path), device=torch.device("cuda"))
    progress = logs.Progress(setup, "pretrain", 1)
    for _ in progress.batches([0], 0):
        held = torch.ones(2**20, device="cuda")                         # 4 MiB live in this epoch
        progress.step(loss=held.sum())
    progress.end_epoch(1e-4, False)
    peak = torch.cuda.max_memory_allocated()
    assert peak >= 4 * 2**20 and f" peak {peak / 2**30:.2f} GiB" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# The project as a whole: layers, limits, parts that lift out, README and DESIGN.md


TOP = {"model", "losses", "lora", "tokenizer", "metrics", "data", "pseudogloss", "optim", "pretrain", "finetune",
       "evaluate"}


# the paper's components, at the bottom with corpora/ (the dataset readers and decoders they need)
COMPONENTS = {"model", "losses", "lora", "tokenizer", "metrics", "data", "pseudogloss", "optim"}


FOLDERS = ("harness", "corpora", "tools")


def project_modules() -> dict:
    """Every Python module of the project but the tests, by dotted name (corpora.files, ...) -> its path."""
    here = Path(__file__).parent
    paths = [p for p in here.glob("*.py") if p.stem != "test_all"]
    paths += [p for f in FOLDERS for p in (here / f).glob("*.py")]
    return {".".join(p.relative_to(here).with_suffix("").parts).removesuffix(".__init__"): p for p in paths}


def import_graph() -> dict:
    """module -> the project modules it imports (top-level and function-level imports alike), read from the AST."""
    import ast
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        graph[name] = {m for m in imported if m in modules and m not in FOLDERS} - {name}
    return graph


def test_tiers_imports_run_downward_without_cycles():
    """The paper's files on top (TOP, at most 11, at most 2,500 lines together), what is not the paper in the
    folders below; no import cycles; the top never imports a tool; at most 8 floors; no file over 500 lines."""
    graph = import_graph()
    modules = project_modules()
    assert {m for m in modules if "." not in m and m not in FOLDERS} == TOP and len(TOP) <= 11
    assert sum(len(modules[m].read_text().splitlines()) for m in TOP) <= 2500
    assert all(len(p.read_text().splitlines()) <= 500 for p in modules.values())

    def reaches(a, b, seen=()):
        return any(n == b or (n not in seen and reaches(n, b, seen + (n,))) for n in graph[a])
    cycles = [n for n in graph if reaches(n, n)]
    assert not cycles, f"import cycles through {cycles}: {graph}"
    # the heart imports only torch and transformers, besides LoRA and the vocabulary trimming
    assert not graph["losses"] and not graph["lora"] and graph["model"] <= {"lora", "tokenizer"}
    upward = [(m, d) for m in graph for d in graph[m] if d.startswith("tools.") and not m.startswith("tools.")]
    assert not upward, f"only tools import tools: {upward}"
    recipes = {"pretrain", "finetune", "evaluate"}
    assert not [(m, d) for m in recipes for d in graph[m] if d in recipes], "a recipe imports a recipe"
    below = [(m, d) for m in graph for d in graph[m] if m.split(".")[0] in ("harness", "corpora") and d in recipes]
    assert not below, below
    # each folder one room: no room imports a room that imports it back; the components and corpora/ import
    # nothing of harness/ or tools/, corpora/ nothing of the top
    room = {m: m.split(".")[0] for m in graph}
    rooms = {}
    for m, deps in graph.items():
        rooms.setdefault(room[m], set()).update(room[d] for d in deps if room[d] != room[m])

    def room_reaches(a, b, seen=()):
        return any(n == b or (n not in seen and room_reaches(n, b, seen + (n,))) for n in rooms.get(a, ()))
    assert not [r for r in rooms if room_reaches(r, r)], rooms
    bottom = [(m, d) for m in graph for d in graph[m] if (m in COMPONENTS or m.startswith("corpora."))
              and d.split(".")[0] in ("harness", "tools")]
    assert not bottom, f"the paper's components import the run's bookkeeping or a tool: {bottom}"
    assert not [(m, d) for m in graph for d in graph[m] if m.startswith("corpora.") and "." not in d], rooms["corpora"]
    floor = {}

    def floor_of(m):  # a file with no project import is on floor 1, every other one above the highest it imports
        if m not in floor:
            floor[m] = 1 + max((floor_of(d) for d in graph[m]), default=0)
        return floor[m]
    assert max(floor_of(m) for m in graph) <= 8, sorted(floor.items(), key=lambda kv: kv[1])


def readme_section(text: str, heading: str) -> str:
    """One section of a Markdown file: from its heading to the next heading of the same level."""
    start = text.index(heading + "\n")
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end >= 0 else len(text)]


def test_readme_map_names_code_that_exists():
    """The README's map from the paper to the code: every file and function it names exists."""
    import importlib
    import pathlib
    import re
    readme = (pathlib.Path(__file__).parent / "README.md").read_text(encoding="utf-8")
    table = readme_section(readme, "## The paper, line by line")
    rows = [r for r in table.splitlines() if r.startswith("| ") and "`" in r]
    assert len(rows) >= 18
    for row in rows:
        _, _, files, where, _ = row.split("|")
        modules = [importlib.import_module(f.replace("/", ".")) for f in re.findall(r"`([\w/]+)\.py`", files)]
        for name in re.findall(r"`([\w.\[\]\"]+)`", where):
            name = name.split("[")[0]
            if name.startswith("python"):
                continue
            assert any(_has(m, name) for m in modules), f"{name} not in {files.strip()}"


def test_readme_reading_order_and_exercises_name_code_and_tests_that_exist():
    """Every function the README's "Reading order" and "Exercises" name is in the file named beside it, and every
    exercise's test is a test of this file, the first ones, in the README's order; at least six exercises."""
    import importlib
    import re
    readme = (Path(__file__).parent / "README.md").read_text(encoding="utf-8")
    part = readme_section(readme, "## Reading order") + readme_section(readme, "## Exercises")
    rows = [r.split("|") for r in part.splitlines() if r.startswith("| ") and ".py`" in r]
    exercises = [r for r in rows if r[1].strip().isdigit()]
    assert len(exercises) >= 6 and len(rows) - len(exercises) >= 8
    for row in rows:
        code = row[2] if row in exercises else row[2] + row[3]
        files = re.findall(r"`([\w/]+)\.py`", code)
        modules = [importlib.import_module(f.replace("/", ".")) for f in files]
        names = [n for n in re.findall(r"`([\w.]+)`", code) if not n.endswith(".py")]
        for name in names:
            assert any(_has(m, name) for m in modules), f"{name} not in {files}"
        for test in re.findall(r"`(test_\w+)`", row[4]) if row in exercises else []:
            assert callable(globals().get(test)), f"exercise test {test} does not exist"
    # this file opens with the exercises' tests, in the README's order: a student finds them first
    named = [t for row in exercises for t in re.findall(r"`(test_\w+)`", row[4])]
    first = re.findall(r"^def (test_\w+)", Path(__file__).read_text(encoding="utf-8"), flags=re.M)[:len(named)]
    assert first == named, first


def test_design_citations_resolve():
    """Every section of DESIGN.md that the code, the README and docs/ cite by name is one of its sections."""
    import pathlib
    import re
    here = pathlib.Path(__file__).parent
    sections = set(re.findall(r"^## (.+)$", (here / "DESIGN.md").read_text(encoding="utf-8"), flags=re.M))
    cited = {s for p in [*project_modules().values(), here / "README.md", *here.glob("docs/*.md")]
             for s in re.findall(r'DESIGN\.md \\?"([^"\\]+)\\?"', p.read_text(encoding="utf-8"))}
    assert len(cited) >= 8 and cited <= sections, cited - sections


def test_functions_and_lines_stay_within_the_limits():
    """Every project file but the tests: no function over 60 lines or with more than 8 parameters (self aside),
    no line over 120 characters; read from the AST and the text, not from the code's own claims."""
    import ast
    files = sorted(project_modules().values()) + [Path(__file__)]
    problems = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        problems += [f"{path.name}:{i}: {len(line)} characters" for i, line in enumerate(text.splitlines(), 1)
                     if len(line) > 120]
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = node.args
            names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs] + [x.arg for x in (a.vararg, a.kwarg) if x]
            params = len(names) - (names[:1] in (["self"], ["cls"]))
            lines = node.end_lineno - node.lineno + 1
            if lines > 60 or params > 8:
                problems.append(f"{path.name}:{node.lineno}: {node.name}, {lines} lines, {params} parameters")
    assert not problems, "\n".join(problems)


PORTABLE = {
    "losses": ["losses.py"], "lora": ["lora.py"], "model": ["model.py", "lora.py", "tokenizer.py"]}


PORTABLE_USE = {
    "losses": """
import math, torch, losses
# eq. 6 by hand: two tokens, the third is padding (id 2)
logits = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]]])
expected = -(math.log(math.exp(2) / (math.exp(2) + 2)) + math.log(math.e / (math.e + 2))) / 2
assert abs(losses.translation_loss(logits, torch.tensor([[0, 1, 2]]), pad_id=2, label_smoothing=0.0) - expected) < 1e-6
# eq. 4 by hand: two orthogonal pairs at temperature 1, each row and column -log(e / (e + 1))
v = torch.eye(2)
assert abs(losses.clip_loss(v, v.clone(), 1.0) + math.log(math.e / (math.e + 1))) < 1e-6
# eqs. 1-3 by hand: one segment, one prototype along it and the zero non-sign one: E-hat = e^2 / (e^2 + 1)
z, protos = torch.tensor([[[3.0, 0.0]]]), torch.tensor([[1.0, 0.0], [0.0, 0.0]])
psp = losses.pseudo_gloss_loss(z, torch.tensor([[True]]), protos, torch.tensor([[1.0]]), 0.5, 0.5)
assert abs(psp + math.log(math.exp(2) / (math.exp(2) + 1))) < 1e-6
# eq. 5: L_align + lambda L_psp, from the model's outputs
out = dict(z_prime=z, mask=torch.tensor([[True]]), prototypes=protos, video=v[:, None],
           video_mask=torch.ones(2, 1, dtype=torch.bool), text=v[:, None], text_mask=torch.ones(2, 1, dtype=torch.bool),
           temperature=1.0)
terms = losses.pretrain_loss(out, torch.tensor([[1.0]]), 0.5, lambda_psp=0.5)
assert abs(terms.loss - (terms.align + 0.5 * terms.psp)) < 1e-6 and abs(terms.psp - psp) < 1e-6
print("used")
""",
    "lora": """
import torch, lora
torch.manual_seed(0)
base = torch.nn.Linear(3, 2)
layer = lora.LoRALinear(base, r=1, alpha=2.0, dropout=0.0)
x = torch.randn(4, 3)
assert torch.equal(layer(x), base(x))                                     # B = 0 at the start
with torch.no_grad():
    layer.lora_A.weight.copy_(torch.tensor([[1.0, 0.0, -1.0]]))
    layer.lora_B.weight.copy_(torch.tensor([[0.5], [2.0]]))
expected = base(x) + (x[:, :1] - x[:, 2:]) * torch.tensor([0.5, 2.0]) * 2.0   # W x + B A x * alpha / r
torch.testing.assert_close(layer(x), expected)
m = torch.nn.Module()
m.q_proj, m.k_proj = torch.nn.Linear(3, 3), torch.nn.Linear(3, 3)
lora.add_lora(m, ("q_proj",), r=2, alpha=4, dropout=0.0)
assert isinstance(m.q_proj, lora.LoRALinear) and type(m.k_proj) is torch.nn.Linear
print("used")
""",
    "model": """
import sys
sys.modules["transformers"] = None                     # any import of transformers fails from here on
import torch, model
cfg = model.get_config("tiny")
enc = model.TemporalEncoder(cfg).eval()
x = torch.randn(2, 9, cfg.frame_dim)
mask = torch.tensor([[True] * 9, [True] * 5 + [False] * 4])
z, z_mask = enc(x, mask)
assert z.shape == (2, 5, cfg.llm_dim) and z_mask.sum(1).tolist() == [5, 3]   # floor(n / 2) + 1 segments
alone, _ = enc(x[1:, :5], mask[1:, :5])                                      # padding changes nothing
torch.testing.assert_close(z[1, :3], alone[0], rtol=1e-4, atol=1e-5)
try:
    model.load_dinov2(cfg)
except ImportError:
    print("used")
""",
}


@pytest.mark.parametrize("name", sorted(PORTABLE))
def test_losses_lora_and_model_work_copied_into_another_project(name, tmp_path):
    """losses.py and lora.py alone, model.py with the two files it imports, in an empty folder: imported and
    used there with torch alone (model.py without transformers, which only building DINOv2 and mBART needs)."""
    here = Path(__file__).parent
    for file in PORTABLE[name]:
        shutil.copy(here / file, tmp_path / file)
    here_check = f"\nimport os\nassert os.path.dirname(os.path.abspath({name}.__file__)) == os.getcwd()\n"
    result = subprocess.run([sys.executable, "-c", PORTABLE_USE[name] + here_check], cwd=tmp_path,
                            capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0 and result.stdout.strip() == "used", result.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".py") == sorted(PORTABLE[name])


def test_readme_recipe_turns_clips_and_sentences_into_the_custom_layout(tmp_path, monkeypatch):
    page = (Path(__file__).parent / "docs" / "datasets.md").read_text(encoding="utf-8")
    recipe = page[page.index("**Your own videos.**"):]
    recipe = recipe[recipe.index("```python\n") + len("```python\n"):recipe.index("```\n", recipe.index("```python"))]
    clips = tmp_path / "data" / "mysigns" / "clips"
    clips.mkdir(parents=True)
    sentences = [f"Sentence number {i}, with a comma." for i in range(12)]
    for i in range(12):
        synthetic.write_mp4(clips / f"clip{i:02d}.mp4", np.full((3 + i % 3, 16, 16, 3), 20 * i, np.uint8))
    (clips.parent / "sentences.txt").write_text("\n".join(sentences) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    exec(compile(recipe, "README recipe", "exec"), {})
    root = clips.parent
    rows = {s: data.read_split(root, s) for s in data.SPLITS}
    assert [len(rows[s]) for s in data.SPLITS] == [10, 1, 1] and data.detect_layout(root) == "custom"
    got = sorted((r["name"], r["video"].name, r["translation"]) for s in data.SPLITS for r in rows[s])
    assert got == [(f"clip{i:02d}", f"clip{i:02d}.mp4", sentences[i]) for i in range(12)]
    assert check.check_videos(root, splits_of(root, data.SPLITS)) == [] and data.dataset_language(root, "en") == "en"


# ----------------------------------------------------------------------------------------------
# Shared by the sections above: small sentences and trees in each layout, the tiny corpus and its finished run, fixtures


def splits_of(root, names) -> dict:
    """check_videos' argument: split -> its rows."""
    return {s: data.read_split(root, s) for s in names}


def tiny_batch(B=3, T=9, V=40):
    torch.manual_seed(0)
    frames = torch.randn(B, T, 3, 32, 32)
    fmask = torch.ones(B, T, dtype=torch.bool)
    fmask[1, 6:], fmask[2, 3:] = False, False
    ids = torch.randint(4, V, (B, 7))
    tmask = torch.ones(B, 7, dtype=torch.bool)
    tmask[0, 5:] = False
    return frames, fmask, ids, tmask


def make_every_weight_count(net):
    """Layer scale 1 (not 1e-5) and non-zero LoRA B, so that every trainable weight gets a visible gradient."""
    for block in net.sign.temporal.blocks:
        nn.init.ones_(block.layer_scale)
    for n, p in net.named_parameters():
        if "lora_B" in n:
            nn.init.normal_(p, std=0.1)


def grads(net):
    return {n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


SENTENCES = ["am donnerstag regnet es im norden", "morgen scheint im süden die sonne",
             "in der nacht schneit es an der küste", "am wochenende wird es wieder wärmer"]


def write_tree(root, videos, split="train", size=(60, 48)):
    """A small corpus in the official PHOENIX14T layout, smooth frames (JPEG-friendly): videos = {name: (n_frames,
    text)}."""
    (root / "annotations" / "manual").mkdir(parents=True, exist_ok=True)
    lines = ["name|video|start|end|speaker|orth|translation"]
    y, x = np.mgrid[:size[0], :size[1]]
    for v, (name, (n, translation)) in enumerate(videos.items()):
        lines.append(f"{name}|{name}/1/*.png|-1|-1|Signer01|X|{translation}")
        folder = root / data.FRAME_DIR / split / name
        folder.mkdir(parents=True)
        for t in range(n):  # a gradient that moves with t, so every frame differs from its neighbours
            frame = 128 + 100 * np.sin(np.stack([x / 9 + t, y / 7 + v, (x + y) / 13 - t / 2], -1))
            Image.fromarray(frame.astype(np.uint8)).save(folder / f"images{t + 1:04d}.png")
    data.annotation_path(root, split).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session", autouse=True)
def shared_cache(tmp_path_factory):
    """pretrain.py's shared pseudo-gloss cache in a folder of the test session's, not the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(folder))
        yield folder / "hfa-slt" / "pseudoglosses"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A few synthetic videos in the official layout."""
    root = tmp_path_factory.mktemp("corpus") / "synthetic"
    return synthetic.make_synthetic(root, seed=0, n_train=8, n_dev=3, n_test=3, frame_size=32)


def flags(corpus, out, *extra):
    """The flags every script takes (evaluate.py); training scripts add train_flags."""
    return ["--data", str(corpus), "--preset", "tiny", "--out", str(out), "--workers", "0", "--batch-size", "4",
            *map(str, extra)]


def train_flags(corpus, out, *extra):
    return flags(corpus, out, "--warmup-epochs", "1", *extra)


@pytest.fixture(scope="module")
def finished(corpus, tmp_path_factory):
    """A finished run: pre-training, fine-tuning and evaluation in one folder; and what evaluate.py and
    tools/analysis.py printed."""
    out = tmp_path_factory.mktemp("finished") / "run"
    pretrain.main(train_flags(corpus, out, "--epochs", "1"))
    assert read_json(out / "pretrain" / "config.json")["pseudoglosses"] == sorted(
        {g for s in data.SPLITS for r in data.read_split(corpus, s) for g in pseudogloss.extract(r["translation"])})
    finetune.main(train_flags(corpus, out, "--stage1-epochs", "1", "--stage2-epochs", "1", "--cache-features"))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        evaluate.main(flags(corpus, out, "--split", "test", "--max-new-tokens", "5"))
        analysis.main(flags(corpus, out, "--split", "test"))
    outdir.release()  # main() keeps --out locked until the process ends; later tests run scripts into copies
    return out, printed.getvalue()


HERE = os.path.dirname(os.path.abspath(__file__))


def script(*argv):
    """Run a script of the project as a user does: `python pretrain.py ...` in the repository folder."""
    return subprocess.run([sys.executable, *map(str, argv)], cwd=HERE, capture_output=True, text=True, timeout=300)


def digests(folder) -> dict:
    """sha256 of every file of a folder (sub-folders too), by relative name; the lock file aside."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def copy_corpus(corpus, tmp_path, edit=None):
    """A copy of the corpus to damage; edit(root) damages it."""
    root = shutil.copytree(corpus, tmp_path / "corpus" / "synthetic")
    for cache in root.glob("pseudoglosses-*.pt"):
        cache.unlink()
    if edit:
        edit(root)
    return root


def _has(module, dotted):
    obj = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


def edited_checkpoint(source, dest, edit):
    """A copy of the --resume state `source` at `dest` after edit(ckpt) (a crafted or mixed-up file)."""
    ckpt = torch.load(source, weights_only=True)
    edit(ckpt)
    torch.save(ckpt, dest)
    return dest


def read_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def edited_folder(source, dest, config=None, tensors=None, training=None):
    """A copy of the kept-weights folder `source` at `dest` after config(dict), tensors(dict) and training(dict)
    edit its config.json, model.safetensors and training.json (a crafted or mixed-up folder)."""
    from safetensors.torch import load_file, save_file
    dest = shutil.copytree(source, dest, dirs_exist_ok=True)
    for name, edit in (("config.json", config), ("training.json", training)):
        if edit:
            value = read_json(dest / name)
            edit(value)
            (dest / name).write_text(json.dumps(value), encoding="utf-8")
    if tensors:
        state = load_file(dest / "model.safetensors")
        tensors(state)
        save_file({k: v.contiguous() for k, v in state.items()}, dest / "model.safetensors")
    return dest


def copy_test_video(corpus, dest, i=1):
    """The frame folder of the corpus's i-th test video, copied to `dest` (a video of one's own)."""
    return shutil.copytree(corpus / data.FRAME_DIR / "test" / data.read_split(corpus, "test")[i]["name"], dest)


def retrieval_line(printed: str) -> str:
    """The `retrieval <split> (N videos): ... R@k ...` line of evaluate.py's output, or None."""
    return next((ln for ln in printed.splitlines() if ln.startswith(("retrieval test", "retrieval dev"))), None)


ZH_SENTENCES = ["我今天去超市买了三斤苹果。", "明天会下雨吗？", "我坐地铁去学校。", "医生说你要多喝水，好好休息。",
                "这件衣服多少钱？", "我们周末去公园玩。", "鬱金香很漂亮。"]  # 鬱 and 鬯 once each: rare characters


@pytest.fixture(scope="module")
def lang_runs(tmp_path_factory):
    """Pre-training, fine-tuning, evaluation and analysis on a few videos of each new synthetic corpus: lang ->
    (corpus, run folder, evaluate's and analysis's results, their stdout, the stages' stderr)."""
    results = {}
    for lang in ("en", "zh"):
        base = tmp_path_factory.mktemp(f"synthetic-{lang}")
        corpus = synthetic.make_corpus(base / f"synthetic-{lang}", lang, n_train=8, n_dev=3, n_test=3, frame_size=32)
        out = base / "run"
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            pretrain.main(train_flags(corpus, out, "--epochs", "1"))
            finetune.main(train_flags(corpus, out, "--stage1-epochs", "1", "--stage2-epochs", "1"))
            printed = stdout.getvalue()
            result = evaluate.main(flags(corpus, out, "--split", "test", "--max-new-tokens", "5"))
            result |= analysis.main(flags(corpus, out, "--split", "test"))
        outdir.release()
        results[lang] = (corpus, out, result, stdout.getvalue()[len(printed):], stderr.getvalue())
    return results


def moving_frames(n, height=48, width=64, seed=0):
    """uint8 [n, height, width, 3]: smooth gradients that move with t (codec- and JPEG-friendly)."""
    y, x = np.mgrid[:height, :width]
    return np.stack([128 + 100 * np.sin(np.stack([x / 9 + t + seed, y / 7 + seed, (x + y) / 13 - t / 2], -1))
                     for t in range(n)]).astype(np.uint8)


def write_how2sign(root):
    """How2Sign as its download script lays it out: train and val (our dev), a realigned CSV each; one train
    sentence without a clip; quoted fields holding a tab, quotes and a pipe. Returns {split: [(name, sentence)]}."""
    header = "VIDEO_ID\tVIDEO_NAME\tSENTENCE_ID\tSENTENCE_NAME\tSTART_REALIGNED\tEND_REALIGNED\tSENTENCE\n"
    tables = {"train": header + "--7E2sU6zP4\t--7E2sU6zP4-5-rgb_front\t--7E2sU6zP4_10\t--7E2sU6zP4_10-5-rgb_front\t"
                                "129.06\t142.48\tAnd I call them decorative elements.\n"
                                "a1\ta1-1-rgb_front\ta1_0\ta1_0-1-rgb_front\t1.0\t2.5\t"
                                "\"She said \"\"hello\"\"\tthen | left.\"\n"
                                "a1\ta1-1-rgb_front\ta1_1\ta1_1-1-rgb_front\t3.0\t4.0\tThis clip was never released.\n",
              "val": header + "b2\tb2-8-rgb_front\tb2_3\tb2_3-8-rgb_front\t10.5\t12.0\t\"Quoted, plainly.\"\n"}
    for split, table in tables.items():
        csv_dir = root / "sentence_level" / split / "text" / "en" / "raw_text" / "re_aligned"
        csv_dir.mkdir(parents=True)
        (csv_dir / f"how2sign_realigned_{split}.csv").write_text(table, encoding="utf-8")
        (root / "sentence_level" / split / "rgb_front" / "raw_videos").mkdir(parents=True)
    clips = {"train": ["--7E2sU6zP4_10-5-rgb_front", "a1_0-1-rgb_front"], "val": ["b2_3-8-rgb_front"]}
    for split, names in clips.items():
        for k, name in enumerate(names):
            synthetic.write_mp4(root / "sentence_level" / split / "rgb_front" / "raw_videos" / f"{name}.mp4",
                      moving_frames(6 + k, seed=k))
    return {"train": [("--7E2sU6zP4_10-5-rgb_front", "And I call them decorative elements."),
                      ("a1_0-1-rgb_front", 'She said "hello"\tthen | left.')],
            "dev": [("b2_3-8-rgb_front", "Quoted, plainly.")]}


def write_csl_daily(root, frames_dir="sentence/frames_512x512", header=True, labels=None, sep="|"):
    """CSL-Daily as released: the label pickle (info entries with all their fields, and the vocabularies), the
    split file and JPEG frame folders 000000.jpg ...; returns {split: [(name, sentence)]}."""
    import pickle
    info = [{"name": "S000000_P0000_T00", "length": 5, "label_gloss": ["今天", "天气", "好"],
             "label_char": ["今", "天", "天", "气", "很", "好"], "label_word": ["今天", "天气", "很", "好"],
             "signer": 0, "time": 0},
            {"name": "S000001_P0003_T00", "length": 4, "label_gloss": ["我", "喜欢", "书"],
             "label_char": "我喜欢看书", "label_word": ["我", "喜欢", "看", "书"], "signer": 3, "time": 0},
            {"name": "S000002_P0001_T00", "length": 3, "label_gloss": ["谢谢"], "label_char": ["谢", "谢", "你"],
             "label_word": ["谢谢", "你"], "signer": 1, "time": 0, "note": "a field of a later release"}]
    (root / "sentence_label").mkdir(parents=True)
    with open(root / "sentence_label" / "csl2020ct_v2.pkl", "wb") as f:
        pickle.dump(labels if labels is not None else {"info": info, "gloss_map": ["今天", "天气", "好"],
                                                       "char_map": ["今", "天"], "word_map": ["今天"]}, f)
    lines = [line.replace("|", sep) for line in ["name|split"] * header + [
        "S000000_P0000_T00|train", "S000001_P0003_T00|dev", "S000002_P0001_T00|train"]]
    (root / "sentence_label" / "split_1.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for k, entry in enumerate(info):
        folder = root / frames_dir / entry["name"]
        folder.mkdir(parents=True)
        for t, frame in enumerate(moving_frames(entry["length"], seed=k)):
            Image.fromarray(frame).save(folder / f"{t:06d}.jpg", quality=95)
    return {"train": [("S000000_P0000_T00", "今天天气很好"), ("S000002_P0001_T00", "谢谢你")],
            "dev": [("S000001_P0003_T00", "我喜欢看书")]}


def write_custom(root, rows, header="name|video|translation"):
    """The custom layout: <root>/train.csv; rows are its lines after the header."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "train.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


if __name__ == "__main__":  # the data-parallel test's worker processes
    ddp_worker(sys.argv[1])
