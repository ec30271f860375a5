"""Speed of the reference: training steps and translation of the paper's model, and the frame loader.

    python -m tools.benchmark --preset paper --stage pretrain --device cuda --batch-size 16 --frames 117 [--compile]
    python -m tools.benchmark --preset tiny --stage finetune --device cpu --batch-size 4 --frames 64
    python -m tools.benchmark --data-pipeline        # packed JPEG loader (data.py) vs a per-frame PNG reader, frames/s
    python -m tools.benchmark --data-pipeline --workers 1 2 4 8 16   # the packed loader's frames/s as workers grow

The models have RANDOM weights (model.get_config(..., pretrained=False)), so nothing is downloaded; the
inputs are random frames and token ids of a realistic length. Fine-tuning is timed as stage 2 (everything
trainable trains). Model FLOP utilisation (CUDA) = FLOPs a step counted from the architecture (flops_per_step)
/ step time / the device's peak dense bf16 FLOP/s.
"""
import argparse
import math
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

import data
import losses
import model
import pretrain
import optim
from corpora import pack


PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s (SXM data sheets)


def mm(m, n, k) -> int:
    """FLOPs of one [m, k] x [k, n] matmul."""
    return 2 * m * n * k


def lora_flops(rows, d_in, d_out, r) -> int:
    """Forward FLOPs of one LoRA adapter B A x on `rows` rows (paper §3.1, LoRA on q and v)."""
    return mm(rows, r, d_in) + mm(rows, d_out, r)


def transformer_layer(rows, t, d, ffn, kv_rows=None, t_kv=None):
    """Forward FLOPs (weights, attention) of one attention + MLP layer over `rows` = batch x t tokens; with kv_rows
    it is a cross-attention onto t_kv keys: q and o over rows, k and v over kv_rows. Returns (weight, attention)."""
    if kv_rows is None:
        weight = mm(rows, 4 * d, d)                                         # q, k, v, o projections
        attn = 2 * mm(rows, t, d)                                           # q k^T and p v, all heads
    else:
        weight = mm(rows, 2 * d, d) + mm(kv_rows, 2 * d, d)
        attn = 2 * mm(rows, t_kv, d)
    return weight + (mm(rows, ffn, d) + mm(rows, d, ffn) if ffn else 0), attn


def temporal_flops(cfg, batch, frames) -> int:
    """Forward FLOPs of the temporal encoder (§3.1): local attention (dense, masked) + MLP, time pooled to
    floor(t/2) + 1 segments after block 2, then the output projection to the LLM's width."""
    total, t = 0, frames
    for i in range(cfg.temporal_layers):
        if i == cfg.downsample_after:
            t = t // 2 + 1
        weight, attn = transformer_layer(batch * t, t, cfg.frame_dim, cfg.temporal_mlp)
        total += weight + attn
    return total + mm(batch * t, cfg.llm_dim, cfg.frame_dim)


def flops_per_step(cfg, stage, batch, frames, text_len, vocab, n_glosses) -> dict:
    """FLOPs of one training step by part, with the multipliers above (3 trained, 2 frozen with grads, 1 no-grad)."""
    dino = cfg.dino_arch
    c, inter, p = dino["hidden_size"], dino["intermediate_size"], dino["patch_size"]
    n_img, patches = batch * frames, (cfg.image_size // p) ** 2
    tokens, r, r_v = patches + 1, cfg.lora_r, cfg.dino_lora_r
    rows = n_img * tokens
    weight, attn = transformer_layer(rows, tokens, c, inter)
    lora_blocks, frozen_blocks = cfg.dino_lora_blocks, dino["num_hidden_layers"] - cfg.dino_lora_blocks
    out = {}
    out["dinov2 frozen blocks (x1)"] = mm(n_img * patches, c, 3 * p * p) + frozen_blocks * (weight + attn)
    visual_lora = (lora_flops(rows, c, 3 * c, r_v) + lora_flops(rows, c, c, r_v)       # fused qkv, output
                   + lora_flops(rows, c, inter, r_v) + lora_flops(rows, inter, c, r_v))  # MLP fc1, fc2
    out["dinov2 LoRA blocks (x2 base, x3 attn+LoRA)"] = lora_blocks * (2 * weight + 3 * attn + 3 * visual_lora)
    t_seg = frames // 2 + 1
    out["frame head + temporal (x3)"] = 3 * (mm(n_img, cfg.frame_dim, c) + temporal_flops(cfg, batch, frames))
    m = cfg.mbart_arch
    d, ffn = m["d_model"], m["encoder_ffn_dim"]
    w_mul = 2 if cfg.freeze_llm else 3
    t_llm = t_seg + (stage == "pretrain")                                # pre-training: CLS token first
    weight, attn = transformer_layer(batch * t_llm, t_llm, d, ffn)
    out[f"LLM encoder on video (x{w_mul} base, x3 attn+LoRA)"] = m["encoder_layers"] * (
        w_mul * weight + 3 * attn + 3 * 2 * lora_flops(batch * t_llm, d, d, r))
    if stage == "pretrain":
        weight, attn = transformer_layer(batch * text_len, text_len, d, ffn)
        out["text encoder (x1, no grad)"] = m["encoder_layers"] * (weight + attn)
        out["pseudo-gloss head + prototypes (x3)"] = 3 * (mm(batch * t_seg, cfg.gloss_dim, cfg.llm_dim)
                                                          + mm(batch * t_seg, n_glosses + 1, cfg.gloss_dim))
    else:
        out["mapper (x3)"] = 3 * mm(batch * t_seg, cfg.llm_dim, cfg.llm_dim)
        rows_d = batch * text_len
        self_w, self_a = transformer_layer(rows_d, text_len, d, m["decoder_ffn_dim"])
        cross_w, cross_a = transformer_layer(rows_d, text_len, d, 0, kv_rows=batch * t_seg, t_kv=t_seg)
        lora = 2 * lora_flops(rows_d, d, d, r) + lora_flops(rows_d, d, d, r) + lora_flops(batch * t_seg, d, d, r)
        out[f"decoder (x{w_mul} base, x3 attn+LoRA)"] = m["decoder_layers"] * (
            w_mul * (self_w + cross_w) + 3 * (self_a + cross_a) + 3 * lora)
        out[f"output projection (x{w_mul})"] = w_mul * mm(rows_d, vocab, d)
    return out


def peak_flops(device_name: str, override=None):
    """The device's dense bf16 peak (FLOP/s) from PEAK_BF16 by name; None when unknown and not given."""
    if override:
        return override
    return next((v for k, v in PEAK_BF16.items() if k in device_name), None)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory(device) -> str:
    """Peak memory: CUDA allocator peak, or on CPU the process' maximum resident set (ru_maxrss, KiB on Linux)."""
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB (torch.cuda.max_memory_allocated)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB (max RSS of the process)"


def bench_model(args):
    """Times training steps (forward, loss, backward, AdamW) and greedy/beam translation of one video."""
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("tools.benchmark --device cuda: no CUDA device is available")
    vocab = 2172 if args.preset == "paper" else 1000
    n_glosses = 2322 if args.preset == "paper" else 100  # pseudo-gloss vocabulary (the paper's PHOENIX14T count)
    cfg = model.get_config(args.preset, pretrained=False, vocab_size=vocab, n_glosses=n_glosses)
    torch.manual_seed(0)
    build = model.build_pretrain_model if args.stage == "pretrain" else model.build_translation_model
    net = build(cfg).to(device).train()
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4, weight_decay=1e-3)
    B, T, S, L = args.batch_size, args.frames, cfg.image_size, args.text_len
    frames = torch.randn(B, T, 3, S, S, device=device)
    mask = torch.ones(B, T, dtype=torch.bool, device=device)
    ids = torch.randint(3, vocab, (B, L), device=device)       # ids 0-2 are <s>, <pad>, </s>
    text_mask = torch.ones(B, L, dtype=torch.bool, device=device)
    labels = (torch.rand(B, n_glosses, device=device) < 8 / n_glosses).float()
    forward = torch.compile(net) if args.compile else net

    def step():
        with optim.autocast(device):
            if args.stage == "pretrain":
                loss = losses.pretrain_loss(forward(frames, mask, ids, text_mask), labels, 0.1)[0]
            else:
                loss = losses.translation_loss(forward(frames, mask, ids, text_mask), ids, pad_id=1)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    print_setting(args, cfg, device, sum(p.numel() for p in trainable))
    for _ in range(args.warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync(device)
    seconds = (time.perf_counter() - start) / args.steps
    print(f"train step: {seconds * 1e3:.1f} ms ({args.warmup} warm-up, {args.steps} timed), "
          f"{B / seconds:.2f} videos/s, {B * T / seconds:.1f} frames/s, loss {loss.item():.3f}")
    print(f"peak memory: {peak_memory(device)}")
    print_flops(args, cfg, device, seconds, vocab, n_glosses)
    if args.stage == "finetune":
        bench_translate(net, cfg, device, T)


def print_setting(args, cfg, device, n_trainable: int):
    """The line that says what bench_model times."""
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    cuda = device.type == "cuda"
    stage = args.stage + (" (stage 2: everything trainable)" if args.stage == "finetune" else "")
    print(f"{args.preset} preset, {stage}, "
          f"{device} ({where}), batch {args.batch_size} x {args.frames} frames of {cfg.image_size}x{cfg.image_size}, "
          f"{args.text_len} text tokens, {n_trainable:,} trainable parameters, "
          f"{'torch.compile, ' if args.compile else ''}{args.attention + ' attention, ' if cuda else ''}"
          f"{optim.default_precision(device)} (the default --precision)")


def print_flops(args, cfg, device, seconds: float, vocab: int, n_glosses: int):
    """FLOPs of one step, part by part (flops_per_step), the achieved rate and, on a GPU, MFU."""
    parts = flops_per_step(cfg, args.stage, args.batch_size, args.frames, args.text_len, vocab, n_glosses)
    total = sum(parts.values())
    for name, f in parts.items():
        print(f"  {name:<48}{f / 1e9:>12.1f} GFLOP")
    print(f"  {'total per step (tools.benchmark, flops_per_step)':<48}{total / 1e9:>12.1f} GFLOP, "
          f"achieved {total / seconds / 1e12:.3f} TFLOP/s")
    if device.type == "cuda":
        peak = peak_flops(torch.cuda.get_device_name(device), args.peak_flops)
        print(f"MFU: {100 * total / seconds / peak:.1f}% of {peak / 1e12:.0f} TFLOP/s bf16 dense" if peak else
              "MFU: unknown device, pass --peak-flops")


def bench_translate(net, cfg, device, n_frames, new_tokens=30):
    """Greedy and 4-beam translation of one video; EOS is made impossible so every run makes exactly new_tokens."""
    net.eval()
    with torch.no_grad():
        net.mbart.final_logits_bias[:, 2] = -1e4   # random weights: never stop early, a fixed 30-token output
    video = torch.randn(1, n_frames, 3, cfg.image_size, cfg.image_size, device=device)
    mask = torch.ones(1, n_frames, dtype=torch.bool, device=device)
    for beams in (1, 4):
        times = []
        for _ in range(3):  # the first run is warm-up
            sync(device)
            start = time.perf_counter()
            with optim.autocast(device):
                out = net.translate(video, mask, start_id=3, eos_id=2, pad_id=1, num_beams=beams,
                                    max_new_tokens=new_tokens)
            sync(device)
            times.append(time.perf_counter() - start)
        best = min(times[1:])
        print(f"translate 1 video of {n_frames} frames, {beams} beam{'s' if beams > 1 else ''}: {best * 1e3:.0f} ms "
              f"for {out.shape[1]} tokens (random weights: EOS suppressed, max_new_tokens={new_tokens})")


def write_videos(root: Path, n_videos: int, seed: int = 0) -> Path:
    """PHOENIX14T-layout corpus of 210x260 PNG videos: smooth gradient, moving 'signer' shapes, mild noise."""
    rng = np.random.default_rng(seed)
    (root / "annotations" / "manual").mkdir(parents=True)
    lines = ["name|video|start|end|speaker|orth|translation"]
    y, x = np.mgrid[:260, :210].astype(np.float32)  # frames are 260 high, 210 wide
    for v in range(n_videos):
        name = f"video{v:03d}"
        lines.append(f"{name}|{name}/1/*.png|-1|-1|Signer01|X|am tag {v} regnet es")
        folder = root / data.FRAME_DIR / "train" / name
        folder.mkdir(parents=True)
        c0, c1 = rng.uniform(40, 220, 3), rng.uniform(40, 220, 3)
        background = (c0 + (c1 - c0) * (0.6 * y / 260 + 0.4 * x / 210)[..., None]).astype(np.float32)  # [260, 210, 3]
        colors = [tuple(int(c) for c in rng.integers(0, 256, 3)) for _ in range(4)]
        for t in range(int(rng.integers(90, 111))):
            image = Image.fromarray(background.clip(0, 255).astype(np.uint8))
            draw = ImageDraw.Draw(image)
            draw.ellipse((80, 30, 130, 90), fill=colors[0])                              # head
            draw.rectangle((55, 95, 155, 260), fill=colors[1])                           # torso
            for k, phase in ((2, 0.0), (3, 1.7)):                                        # two moving hands
                cx, cy = 105 + 60 * math.sin(0.15 * t + phase), 150 + 50 * math.cos(0.11 * t + phase)
                draw.ellipse((cx - 14, cy - 14, cx + 14, cy + 14), fill=colors[k])
            pixels = np.asarray(image, dtype=np.float32) + rng.normal(0, 4, (260, 210, 3))  # sensor noise
            Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"images{t + 1:04d}.png")
        data.annotation_path(root, "train").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


class PngFrames(torch.utils.data.Dataset):
    """Baseline: the per-frame reader of earlier SLT code (PIL open, Resize(256), CenterCrop(224), ToTensor, Normalize
    per frame, then stack), written as torchvision's transforms do it on PIL images; same frames and output."""

    def __init__(self, root, split, size=224):
        self.rows, self.folder = data.read_split(root, split), Path(root) / data.FRAME_DIR / split
        self.size, self.resize = size, round(size * 256 / 224)
        self.mean = torch.tensor(data.IMAGENET_MEAN).view(3, 1, 1)
        self.std = torch.tensor(data.IMAGENET_STD).view(3, 1, 1)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        out = []
        for path in sorted((self.folder / row["name"]).glob("images*.png")):
            with Image.open(path) as im:
                im = im.convert("RGB").resize((self.resize, self.resize), Image.BILINEAR)
            left = (self.resize - self.size) // 2
            im = im.crop((left, left, left + self.size, left + self.size))
            x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div(255)    # ToTensor
            out.append((x - self.mean) / self.std)                                      # Normalize
        return {"name": row["name"], "translation": row["translation"], "frames": torch.stack(out)}


def time_loaders(datasets: dict, args, passes: int = 3, workers: dict = None) -> dict:
    """Frames/s from disk to collated batches: normalised floats for the PNG baseline; the uint8 batches that
    data.SignVideos hands to the training loop, and those batches after data.prepare (normalised, augmented
    when training) on the CPU, for the rows so named (on a GPU machine prepare runs on the GPU): the best of
    `passes` passes, the loaders interleaved (this machine is shared, so load changes while it measures), after
    one warm-up pass each (workers started, page cache).
    `workers`: DataLoader workers by name (default: the first --workers for every loader)."""
    workers = {name: (workers or {}).get(name, args.workers[0]) for name in datasets}
    loaders = {name: torch.utils.data.DataLoader(ds, batch_size=args.data_batch, num_workers=workers[name],
                                                 collate_fn=data.collate, persistent_workers=workers[name] > 0)
               for name, ds in datasets.items()}
    best = {name: 0.0 for name in loaders}
    for k in range(passes + 1):
        for name, loader in loaders.items():
            start, n = time.perf_counter(), 0
            for batch in loader:
                if name.endswith("+ prepare on the CPU"):  # normalise (and augment) here, inside the timing
                    data.prepare(batch, "cpu", train=loader.dataset.train)
                n += int(batch["frame_mask"].sum())
            if k:
                best[name] = max(best[name], n / (time.perf_counter() - start))
    return best


def bench_data(args):
    """Frames/s of data.SignVideos(packed=True) vs the PNG baseline on the same generated videos, same DataLoader."""
    tmp = Path(tempfile.mkdtemp(prefix="slt-bench-"))
    try:
        start = time.perf_counter()
        root = write_videos(tmp, args.videos)
        paths = sorted((root / data.FRAME_DIR / "train").glob("*/*.png"))
        size = sum(p.stat().st_size for p in paths)
        print(f"wrote {args.videos} videos, {len(paths)} PNG frames of 210x260, "
              f"{size / len(paths) / 1e3:.0f} KB a frame "
              f"on average, in {time.perf_counter() - start:.0f} s ({tmp})")
        for resize, packed_dir in ((256, None), (None, tmp / "packed-as-shipped")):
            start = time.perf_counter()
            folder = pack.pack_split(root, "train", data.read_split(root, "train"), packed_dir, args.quality, resize,
                                     workers=args.workers[0] or 1)
            seconds = time.perf_counter() - start
            print(f"packing {'as shipped' if resize is None else f'resized to {resize}x{resize}'} (one-off, not in the "
                  f"throughput): {seconds:.1f} s, {len(paths) / seconds:.0f} frames/s, "
                  f"{(folder / 'frames.bin').stat().st_size / len(paths) / 1e3:.0f} KB a frame "
                  f"(JPEG quality {args.quality})")
        print(f"DataLoader: {args.workers[0]} workers, batch {args.data_batch}, data.collate, 224x224 centre crop, "
              f"{torch.get_num_threads()} torch threads in the main process; best of 3 interleaved passes")
        fps = time_loaders({
            "PNG per-frame reader (baseline)": PngFrames(root, "train"),
            "data.SignVideos(packed=True), 256 pack (python -m tools.prepare --pack default)":
                data.SignVideos(root, "train", packed=True),
            "data.SignVideos(packed=True), 256 pack, + prepare on the CPU": data.SignVideos(root, "train", packed=True),
            "data.SignVideos(packed=True), pack as shipped (--resize 0)":
                data.SignVideos(root, "train", packed=True, packed_dir=tmp / "packed-as-shipped"),
            "data.SignVideos(packed=False), the PNGs": data.SignVideos(root, "train"),
            "data.SignVideos(packed=True, train=True), augmented, + prepare on the CPU":
                data.SignVideos(root, "train", packed=True, train=True),
        }, args)
        base = next(iter(fps.values()))
        for name, value in fps.items():
            print(f"{name:<75}{value:8.0f} frames/s  {value / base:5.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_workers(args):
    """Frames/s of the packed loader (256 pack, the uint8 batches the training loop receives; normalising and
    augmenting run on the GPU there) for each --workers count up to this machine's cores, all loaders
    interleaved; the generated videos are repeated so that every worker reads several batches a pass."""
    cores = len(os.sched_getaffinity(0))
    counts, skipped = [n for n in args.workers if n <= cores], [n for n in args.workers if n > cores]
    if not counts:
        raise SystemExit(f"--workers {' '.join(map(str, args.workers))}: this machine has only {cores} cores")
    tmp = Path(tempfile.mkdtemp(prefix="slt-bench-"))
    try:
        root = write_videos(tmp, args.videos)
        pack.pack_split(root, "train", data.read_split(root, "train"), None, args.quality, 256, workers=cores)
        ds = data.SignVideos(root, "train", packed=True)
        repeats = max(1, math.ceil(4 * max(counts) * args.data_batch / len(ds)))  # >= 4 batches a worker
        videos = torch.utils.data.ConcatDataset([ds] * repeats)
        print(f"data.SignVideos(packed=True), 256 pack (JPEG quality {args.quality}), 224x224 centre crop, uint8 "
              f"batches of {args.data_batch} videos (data.collate), {len(videos)} videos a pass ({args.videos} "
              f"generated, x{repeats}), {cores} cores; best of 3 interleaved passes")
        fps = time_loaders({f"{n} workers": videos for n in counts}, args, workers={f"{n} workers": n for n in counts})
        print(f"{'workers':>8}{'frames/s':>12}{'x 1st':>8}{'frames/s a worker':>20}")
        first = fps[f"{counts[0]} workers"]
        for n in counts:
            value = fps[f"{n} workers"]
            print(f"{n:>8}{value:>12.0f}{value / first:>8.2f}{value / max(n, 1):>20.0f}")
        for n in skipped:
            print(f"{n:>8}    not measured: more workers than the {cores} cores here")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper", choices=sorted(model.PRESETS), help="model size")
    ap.add_argument("--stage", default="pretrain", choices=["pretrain", "finetune"],
                    help="which model's training step (finetune: stage 2)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    ap.add_argument("--batch-size", type=int, default=16, help="videos per step")
    ap.add_argument("--frames", type=int, default=117, help="frames a video (PHOENIX14T's average is ~117)")
    ap.add_argument("--text-len", type=int, default=25, help="tokens a sentence")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model")
    ap.add_argument("--attention", choices=["xformers", "sdpa"], default="xformers", help="the temporal encoder's "
                    "attention on CUDA: xformers' kernel where installed (model.py's choice), or torch's SDPA")
    ap.add_argument("--peak-flops", type=float, help="the device's peak dense bf16 FLOP/s (default: by device name)")
    ap.add_argument("--data-pipeline", action="store_true", help="benchmark the frame loaders instead of the model")
    ap.add_argument("--videos", type=int, default=24, help="--data-pipeline: generated videos (~100 frames each)")
    ap.add_argument("--workers", type=int, nargs="+", default=[2], help="--data-pipeline: DataLoader workers "
                    "(all loaders); several counts: the packed loader's frames/s for each")
    ap.add_argument("--data-batch", type=int, default=4, help="--data-pipeline: videos a batch (both loaders)")
    ap.add_argument("--quality", type=int, default=93, help="--data-pipeline: JPEG quality of the pack")
    args = ap.parse_args()
    if args.attention == "sdpa":
        model.xops = None  # LocalSelfAttention falls back to F.scaled_dot_product_attention
    elif args.device.startswith("cuda") and model.xops is None:
        raise SystemExit("--attention xformers: xformers is not installed (pip install xformers), "
                         "or pass --attention sdpa")
    if args.data_pipeline:
        bench_workers(args) if len(args.workers) > 1 else bench_data(args)
    else:
        bench_model(args)

