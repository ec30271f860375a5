"""What both training loops need of §4.2, and evaluation of §4.1 (DESIGN.md "Training"): the data loaders,
mBART's text formats, autocast and fp16's loss scaling, beam-search translation, AdamW's parameter groups, the
one-cycle schedule and each epoch's start. What is not method (flags, set-up, checkpoints, --resume, logs,
data-parallel) is in harness/.
"""
import torch
from tqdm import tqdm

import data
import tokenizer
from harness import parallel, precisions


def loader(setup, split: str, train: bool, ds=None, collate=data.collate):
    """A DataLoader over one split (or over `ds`): shuffled and augmented for training (each process its
    share of the --batch-size videos, which is the global batch; its generator reseeded by start_epoch),
    in order otherwise."""
    args = setup.args
    if ds is None:
        ds = data.SignVideos(setup.root, split, train=train, size=setup.cfg.image_size, max_frames=args.max_frames,
                             frame_stride=args.frame_stride, packed=args.packed, packed_dir=args.packed_dir)
    rank, n = parallel.world()
    if args.batch_size % n:
        raise SystemExit(f"--batch-size {args.batch_size} is the global batch: it must divide by {n} processes")
    sampler = None
    if train and n > 1:
        sampler = torch.utils.data.DistributedSampler(ds, n, rank, shuffle=True, seed=args.seed, drop_last=True)
    # drop_last=False: the last partial batch trains, as in the authors' loader (`dataset/slt_dataset.py` L200)
    return torch.utils.data.DataLoader(
        ds, batch_size=args.batch_size // n, shuffle=train and sampler is None, sampler=sampler,
        generator=torch.Generator() if train else None, drop_last=False,
        num_workers=args.workers, collate_fn=collate, pin_memory=setup.device.type == "cuda",
        persistent_workers=args.workers > 0)


def text_batch(tok, sentences, device, max_tokens: int = tokenizer.MAX_TEXT_TOKENS):
    """mBART's formats as the authors' code builds them (DESIGN.md "Tokenizer"): source `x </s> de_DE` for the
    text encoder; decoder labels the same `x </s> de_DE` and decoder input `de_DE x </s>` (mBART's
    shift_tokens_right of the labels); each at most max_tokens long."""
    pieces = [tok.encode(s)[:max_tokens - 2] for s in sentences]

    def pad(rows):
        ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(r) for r in rows], batch_first=True,
                                              padding_value=tok.pad_id).to(device)   # [B, L]
        return ids, ids != tok.pad_id

    source = pad([p + [tok.eos_id, tok.lang_id] for p in pieces])
    decoder_input = pad([[tok.lang_id] + p + [tok.eos_id] for p in pieces])
    labels, _ = pad([p + [tok.eos_id, tok.lang_id] for p in pieces])
    return source, decoder_input, labels


def autocast(device, precision: str = None):
    """Autocast in --precision (bf16, fp16; fp32: none); by default the device's (harness/precision.py)."""
    precision = precision or precisions.default(device)
    return torch.autocast(device_type=torch.device(device).type, dtype=precisions.PRECISIONS[precision],
                          enabled=precision != "fp32")


def grad_scaler(device, precision: str) -> torch.amp.GradScaler:
    """fp16's dynamic loss scaling, as the authors' fp16 runs: the loss scaled up before backward, the gradients
    unscaled before clipping, a step whose gradients overflowed skipped and the scale halved. A pass-through for
    bf16 and fp32, whose range needs none. Its scale is not kept by --resume: it re-calibrates in a few steps."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


@torch.no_grad()
def translate(net, loader, tok, device, num_beams: int = 4, max_new_tokens: int = 150, desc="translate",
              precision: str = None):
    """Beam search (§4.1): hypotheses and references for every video of `loader`, in its order; fine-tuning's
    dev BLEU-4 and evaluate.py both translate with it."""
    was_training = net.training
    net.eval()
    hyps, refs = [], []
    for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=not parallel.is_main()):
        frames, mask = data.prepare(batch, device, train=False)
        with autocast(device, precision):
            ids = net.translate(frames, mask, tok.lang_id, tok.eos_id, tok.pad_id, num_beams, max_new_tokens)
        hyps += [tok.decode(row.tolist()) for row in ids]
        refs += batch["translations"]
    net.train(was_training)
    return hyps, refs


def param_groups(net, weight_decay: float):
    """AdamW groups: decay on weight matrices only, none on biases, norms, layer scales and temperatures."""
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for n, p in params if p.ndim < 2], "weight_decay": 0.0}]


def one_cycle(optimizer, warmup_steps: int, total_steps: int):
    """§4.2's one-cycle schedule, as torch's OneCycleLR (the authors' choice): warm-up from lr/25 to the peak,
    cosine decay to lr/25e4, Adam's beta1 cycled between 0.95 and 0.85. OneCycleLR divides by both phases'
    lengths, so the warm-up is kept between 1.5 steps and all but half a step (short test runs)."""
    warmup = min(max(warmup_steps, 1.5), total_steps - 0.5)
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                               total_steps=max(total_steps, 1), pct_start=warmup / max(total_steps, 1),
                                               anneal_strategy="cos")


def train_mode(net):
    """Training mode for what trains; every module whose parameters are all frozen runs as at inference
    (fixed BatchNorm statistics, no dropout), e.g. fine-tuning stage 1's mBART encoder beside the decoder."""
    net.train()
    for m in net.modules():
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):
            m.eval()


def start_epoch(net, batches, seed: int, epoch: int):
    """Before an epoch: its data order, augmentation and dropout seeded by the epoch (so --resume continues
    exactly), each process its share of the shuffled videos, and the model in training mode (train_mode)."""
    torch.manual_seed(seed + epoch)
    batches.generator.manual_seed(seed + epoch)
    if isinstance(batches.sampler, torch.utils.data.DistributedSampler):
        batches.sampler.set_epoch(epoch)
    train_mode(net)


def validates(epoch: int, epochs: int, every: int) -> bool:
    """Whether the loop validates after `epoch` (0-based): every `every` epochs, and always after the last."""
    return (epoch + 1) % every == 0 or epoch + 1 == epochs

