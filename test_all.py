"""Tests: every component against an independent reference (peft, sacrebleu, dense attention, the
equations worked by hand), and the three stages end to end on a few synthetic videos.

    python -m pytest -q test_all.py
"""
import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import losses
import model

# ----------------------------------------------------------------------------------------------
# model.py: LoRA, RoPE, local attention, the temporal encoder, the two models, Table 3


def test_lora_matches_peft():
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    net = nn.Sequential()
    net.q_proj = nn.Linear(12, 10)
    ref = peft.get_peft_model(net, peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj"]))
    ours = model.LoRALinear(nn.Linear(12, 10), r=4, alpha=8, dropout=0.0)
    ours.base.load_state_dict(net.q_proj.base_layer.state_dict())
    # B is zero at init (a no-op adapter): give both the same non-zero A and B
    a, b = torch.randn(4, 12), torch.randn(10, 4)
    with torch.no_grad():
        ours.lora_A.weight.copy_(a), ours.lora_B.weight.copy_(b)
        net.q_proj.lora_A["default"].weight.copy_(a), net.q_proj.lora_B["default"].weight.copy_(b)
    x = torch.randn(5, 12)
    torch.testing.assert_close(ours(x), ref(x))
    assert [n for n, p in ours.named_parameters() if p.requires_grad] == ["lora_A.weight", "lora_B.weight"]
    assert torch.count_nonzero(model.LoRALinear(nn.Linear(3, 3), 2, 4, 0.1).lora_B.weight) == 0
    with model.lora_disabled(ours):
        torch.testing.assert_close(ours(x), ours.base(x))


def rope_reference(x, base=10000.0):
    """RoPE as complex rotation: pair (x_i, x_{i+d/2}) is one complex number turned by t * base^(-2i/d)."""
    T, d = x.shape[-2], x.shape[-1]
    out = torch.empty_like(x)
    for t in range(T):
        for i in range(d // 2):
            angle = t * base ** (-2 * i / d)
            c = torch.complex(x[..., t, i], x[..., t, i + d // 2]) * complex(math.cos(angle), math.sin(angle))
            out[..., t, i], out[..., t, i + d // 2] = c.real, c.imag
    return out


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


def test_local_attention_matches_dense_and_is_local():
    torch.manual_seed(0)
    attn = model.LocalSelfAttention(16, heads=2, window=7).eval()
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


@pytest.mark.skipif(not torch.cuda.is_available() or model.xops is None, reason="xformers needs CUDA")
def test_xformers_attention_matches_sdpa():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 37, 32, device="cuda") for _ in range(3))
    mask = torch.ones(2, 37, dtype=torch.bool, device="cuda")
    mask[0, 30:] = False
    allowed = model.local_attention_mask(mask, 7)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    torch.testing.assert_close(model.xformers_attention(q, k, v, allowed, 0.0)[mask[:, None].expand(2, 4, 37)],
                               ref[mask[:, None].expand(2, 4, 37)], atol=1e-4, rtol=1e-4)


def test_temporal_encoder_downsamples_and_ignores_padding():
    torch.manual_seed(0)
    enc = model.TemporalEncoder(model.get_config("tiny")).eval()
    for block in enc.blocks:  # layer scale 1e-5 would hide any leak: make the blocks count
        nn.init.ones_(block.scale1), nn.init.ones_(block.scale2)
    x = torch.randn(2, 11, 64)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, 7:] = False
    z, zmask = enc(x, mask)
    assert z.shape == (2, 6, 64) and zmask.sum(1).tolist() == [6, 4]  # ceil(11/2), ceil(7/2)
    alone, _ = enc(x[1:, :7], mask[1:, :7])
    torch.testing.assert_close(z[1, :4], alone[0])
    # the pooling, by hand: segment j averages frames 2j-1, 2j, 2j+1 (zero outside the video)
    pooled, _ = model.downsample(x[1:, :7], mask[1:, :7])
    padded = F.pad(x[1, :7], (0, 0, 1, 1))
    torch.testing.assert_close(pooled[0], torch.stack([padded[2 * j: 2 * j + 3].mean(0) for j in range(4)]))


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
        nn.init.ones_(block.scale1), nn.init.ones_(block.scale2)
    for n, p in net.named_parameters():
        if "lora_B" in n:
            nn.init.normal_(p, std=0.1)


def grads(net):
    return {n for n, p in net.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}


def test_pretrain_model_trains_exactly_lora_and_new_layers():
    cfg = model.get_config("tiny", vocab_size=40, freeze_llm=True)  # the paper's freezing, tiny widths
    net = model.build_pretrain_model(cfg)
    frames, fmask, ids, tmask = tiny_batch()
    seen = []
    first_lora_block = net.sign.visual.dino.encoder.layer[net.sign.visual.n_frozen]
    first_lora_block.register_forward_pre_hook(lambda m, args: seen.append(args[0].requires_grad))
    make_every_weight_count(net)
    out = net(frames, fmask, ids, tmask)
    assert out["glosses"].shape == (3, 5, 300) and out["mask"].sum(1).tolist() == [5, 3, 2]
    prototypes = torch.cat([torch.randn(6, 300), torch.zeros(1, 300)])
    loss, _, _ = losses.pretrain_loss(out, prototypes, (torch.rand(3, 6) > 0.5).float())
    loss.backward()
    assert seen == [False]  # the frozen DINOv2 blocks kept no graph
    expected = {n for n, p in net.named_parameters() if p.requires_grad}
    assert all("lora_" in n or not n.startswith(("sign.visual.dino", "llm_encoder")) for n in expected)
    assert {n for n in expected if "lora_" in n} == {n for n, _ in net.named_parameters() if "lora_" in n}
    assert grads(net) == expected
    # the text branch is the LLM encoder with LoRA off: L does not depend on the LoRA weights
    with torch.no_grad():
        for n, p in net.llm_encoder.named_parameters():
            if "lora_B" in n:
                p.normal_()
    torch.testing.assert_close(net(frames, fmask, ids, tmask)["text"], out["text"])


def test_translation_model_trains_exactly_lora_and_new_layers():
    cfg = model.get_config("tiny", vocab_size=40, freeze_llm=True)
    net = model.build_translation_model(cfg)
    frames, fmask, ids, tmask = tiny_batch()
    make_every_weight_count(net)
    logits = net(frames, fmask, ids, tmask)
    assert logits.shape == (3, 7, 40)
    losses.translation_loss(logits, ids, pad_id=1).backward()
    expected = {n for n, p in net.named_parameters() if p.requires_grad}
    assert all("lora_" in n or not n.startswith(("sign.visual.dino", "mbart")) for n in expected)
    assert "mapper.weight" in expected and any("encoder_attn.q_proj.lora_A" in n for n in expected)
    assert grads(net) == expected
    net.eval()
    hyp = net.translate(frames, fmask, start_id=4, eos_id=2, pad_id=1, num_beams=2, max_new_tokens=5)
    assert hyp.shape[0] == 3 and hyp.shape[1] <= 5


def test_trim_vocabulary_keeps_outputs_for_kept_tokens():
    torch.manual_seed(0)
    cfg = model.get_config("tiny", vocab_size=60)
    full = model.load_mbart(cfg).eval()
    nn.init.normal_(full.final_logits_bias)
    keep = torch.tensor([0, 1, 2, 3, 7, 11, 20, 33, 41, 59])
    trimmed = model.trim_vocabulary(copy.deepcopy(full), keep)
    new_ids = torch.tensor([[4, 5, 8, 2], [6, 9, 2, 1]])  # kept tokens, in the trimmed numbering
    old_ids = keep[new_ids]
    ref = full(input_ids=old_ids, decoder_input_ids=old_ids).logits[..., keep]
    torch.testing.assert_close(trimmed(input_ids=new_ids, decoder_input_ids=new_ids).logits, ref)
    assert trimmed.model.shared.weight.shape[0] == 10 and trimmed.lm_head.weight is trimmed.model.shared.weight


def test_paper_parameter_counts_match_table_3(capsys):
    model.print_counts("paper")
    lines = capsys.readouterr().out.strip().splitlines()
    # Table 3: fine-tuning 16,819,712 / 395,924,608; pre-training as DESIGN.md derives it
    assert lines[-1] == "finetune: trainable 16,819,712 total 395,924,608"
    assert lines[-2] == "pretrain: trainable 14,351,151 total 190,841,263 paper-equivalent total 345,274,799"


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="--preset"):
        model.get_config("huge")


# ----------------------------------------------------------------------------------------------
# losses.py: eqs. 1-6 against the equations computed by hand


def test_pseudo_gloss_loss_by_hand():
    torch.manual_seed(0)
    B, T, U = 2, 4, 3
    z = torch.randn(B, T, 5)
    protos = torch.cat([torch.randn(U, 5), torch.zeros(1, 5)])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    labels = torch.tensor([[1.0, 0, 1], [0, 1, 0]])
    tt, tu = 0.3, 0.5
    total = 0.0
    for b in range(B):
        steps = [t for t in range(T) if mask[b, t]]
        s = [[0.0 if u == U else float(z[b, t] @ protos[u] / (z[b, t].norm() * protos[u].norm()))  # eq. 1
              for u in range(U + 1)] for t in range(T)]
        for u in range(U):
            time_den = sum(math.exp(s[t][u] / tt) for t in steps)
            e = sum(math.exp(s[t][u] / tt) / time_den  # eq. 2, over time
                    * math.exp(s[t][u] / tu) / sum(math.exp(s[t][w] / tu) for w in range(U + 1))  # over prototypes
                    for t in steps)  # eq. 3
            e = min(max(e, 1e-6), 1 - 1e-6)
            h = float(labels[b, u])
            total += -(h * math.log(e) + (1 - h) * math.log(1 - e))
    got = losses.pseudo_gloss_loss(z, mask, protos, labels, torch.tensor(tt), torch.tensor(tu))
    assert abs(got.item() - total / (B * U)) < 1e-5
    assert torch.isfinite(got)


def test_clip_loss_by_hand():
    torch.manual_seed(0)
    v, t, tau = torch.randn(4, 6), torch.randn(4, 6), 0.07
    sim = [[float(F.cosine_similarity(v[j], t[k], dim=0)) / tau for k in range(4)] for j in range(4)]
    v2t = sum(math.log(math.exp(sim[j][j]) / sum(math.exp(sim[j][k]) for k in range(4))) for j in range(4))
    t2v = sum(math.log(math.exp(sim[j][j]) / sum(math.exp(sim[k][j]) for k in range(4))) for j in range(4))
    assert abs(losses.clip_loss(v, t, tau).item() - (-(v2t + t2v) / 8)) < 1e-4  # eq. 4: -1/(2B) (...)


def test_masked_mean_and_eq5_and_eq6():
    x = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert losses.masked_mean(x, torch.tensor([[True, True, False]])).item() == 2.0
    torch.manual_seed(0)
    out = dict(video=torch.randn(2, 3, 4), mask=torch.ones(2, 3, dtype=torch.bool), text=torch.randn(2, 5, 4),
               text_mask=torch.ones(2, 5, dtype=torch.bool), temperature=0.1, glosses=torch.randn(2, 3, 8),
               tau_t=torch.tensor(0.1), tau_u=torch.tensor(0.1))
    protos, labels = torch.cat([torch.randn(3, 8), torch.zeros(1, 8)]), torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    total, align, psp = losses.pretrain_loss(out, protos, labels, lambda_psp=0.5)
    torch.testing.assert_close(total, align + 0.5 * psp)
    # eq. 6 by hand: mean over non-pad tokens of -log p(reference), no smoothing
    logits, labels = torch.randn(1, 3, 5), torch.tensor([[2, 4, 1]])
    logp = logits.log_softmax(-1)
    ref = -(logp[0, 0, 2] + logp[0, 1, 4]) / 2
    torch.testing.assert_close(losses.translation_loss(logits, labels, pad_id=1, label_smoothing=0.0), ref)
