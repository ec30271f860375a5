"""The training machinery that pretrain.py, finetune.py and evaluate.py share, kept apart so that those three
read as the paper's sections (§3.2, §3.3, §4.1): flags, set-up, data loaders, mBART's text formats, the
optimiser and its schedule, checkpoints, the training loop, and data-parallel set-up (DESIGN.md "Training").
"""
import argparse
import contextlib
import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

import data
import model
import runs
import synthetic
import tokenizer

# ----------------------------------------------------------------------------------------------
# Flags: every default is the paper's (§4.2) or, where it is silent, the authors' code (DESIGN.md "Training")


def data_flags(doc: str) -> argparse.ArgumentParser:
    """The flags of every script: which data, which run, which device, how frames are read."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="phoenix14t", help="phoenix14t, how2sign, csl-daily ($PHOENIX14T_ROOT, "
                    "$HOW2SIGN_ROOT, $CSL_DAILY_ROOT or data/<name>), synthetic, synthetic-hard, synthetic-en, "
                    "synthetic-zh (generated once under data/<name>), or a folder in one of these layouts or the "
                    "custom one (README \"Datasets\")")
    ap.add_argument("--lang", choices=sorted(tokenizer.LANG_CODES), help="the translations' language (default: the "
                    "dataset's: phoenix14t de, how2sign en, csl-daily zh; required for the custom layout)")
    ap.add_argument("--preset", choices=sorted(model.PRESETS), help="model size (default: paper; tiny for synthetic)")
    ap.add_argument("--out", type=Path, help="the run's folder (default: runs/<data>-<preset>)")
    ap.add_argument("--overwrite", action="store_true", help="start over in an --out that holds this script's "
                    "files: they (and those of the later stages) are moved to <out>/replaced-<time>/")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    ap.add_argument("--batch-size", type=runs.positive_int, default=16, help="videos per step, over all processes (§4.2)")
    ap.add_argument("--workers", type=runs.non_negative_int, default=min(8, os.cpu_count() or 1),
                    help="data loading processes")
    ap.add_argument("--max-frames", type=runs.positive_int, default=300, help="longer videos are subsampled evenly to this")
    ap.add_argument("--frame-stride", type=runs.positive_int, default=1, help="read every n-th frame")
    ap.add_argument("--packed", action="store_true", help="read frames from the JPEG packs that "
                    "`python data.py --pack --data ...` writes once (much faster than the PNGs)")
    ap.add_argument("--packed-dir", help="where the packs are (default: <root>/packed)")
    ap.add_argument("--dino", help="DINOv2 hub name or local folder (paper preset; default facebook/dinov2-small)")
    ap.add_argument("--mbart", help="mBART hub name or local folder (paper preset; default facebook/mbart-large-cc25)")
    return ap


def training_flags(doc: str) -> argparse.ArgumentParser:
    """data_flags and the flags of the optimiser, its schedule and the run's bookkeeping."""
    ap = data_flags(doc)
    ap.add_argument("--seed", type=int, default=0, help="data order, augmentation, dropout and initialisation")
    ap.add_argument("--lr", type=runs.positive_float, default=3e-4, help="peak learning rate of the one-cycle schedule (§4.2)")
    ap.add_argument("--weight-decay", type=runs.non_negative_float, default=1e-3, help="AdamW weight decay (§4.2)")
    ap.add_argument("--warmup-epochs", type=runs.non_negative_int, default=5,
                    help="epochs of warm-up before the cosine decay (§4.2)")
    ap.add_argument("--resume", action="store_true", help="continue the interrupted run in --out (with the same flags)")
    ap.add_argument("--stop-after", type=runs.positive_int, help="stop after this many epochs (the schedule still spans "
                    "all of them); continue later with --resume, e.g. under a cluster's time limit")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model the training loop steps "
                    "(DESIGN.md \"Performance\"); validation, translation and checkpoints use the plain model")
    return ap


def parse(ap: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, and fill the defaults that depend on other flags."""
    args = ap.parse_args(argv)
    if getattr(args, "resume", False) and args.overwrite:
        ap.error("--resume continues the run in --out, --overwrite starts it over: pass one of them")
    args.preset = args.preset or ("tiny" if args.data in synthetic.SETTINGS else "paper")
    args.out = args.out or Path("runs") / f"{Path(args.data).name}-{args.preset}"
    return args


# ----------------------------------------------------------------------------------------------
# Set-up: data root, tokenizer, config, model, loaders


@dataclass
class Run:
    """What a script works with: its flags, the model config, the data root, the tokenizer and the device."""
    args: argparse.Namespace
    cfg: model.Config
    root: Path
    tok: tokenizer.Tokenizer
    device: torch.device
    lang: str = "de"  # the translations' language: pseudo-glosses, mBART's language code, scoring


def setup(args, config: dict = None, stage: str = None, tokenizer_state: dict = None, splits=("train", "dev")) -> Run:
    """Resolve the data, claim --out for `stage` (lock; refuse to write over a run: runs.claim), check every
    video of `splits`, build the tokenizer (or take a checkpoint's, `tokenizer_state`) and fix the config
    (from a checkpoint when given)."""
    device = init_distributed(args.device)
    torch.manual_seed(getattr(args, "seed", 0))
    names = {k: v for k, v in (("dino", args.dino), ("mbart", args.mbart)) if v}
    cfg = dataclasses.replace(model.get_config(args.preset) if config is None else model.Config(**config), **names)
    cfg = model.widths_from_checkpoints(cfg) if config is None else cfg
    with main_process_first():  # one process generates data and tokenizer files, the others read them
        root = synthetic.resolve_root(args.data)
        lang = data.dataset_language(root, args.lang)
        saved = (tokenizer_state or {}).get("lang_code", "de_DE")  # a checkpoint's (older ones: German)
        if tokenizer_state is not None and saved != tokenizer.lang_code(lang):
            raise SystemExit(f"the checkpoint's tokenizer is {saved}, the data under '{root}' is {lang} "
                             f"({tokenizer.lang_code(lang)}): pass the run and the data of one language")
        resume = getattr(args, "resume", False)
        if stage and is_main():
            runs.claim(args.out, stage, resume, args.overwrite, getattr(args, "split", None))
        problems = data.check_videos(root, splits, args.packed, args.packed_dir)
        if problems:
            raise SystemExit(f"{len(problems)} problem(s) with the videos of {'/'.join(splits)} under '{root}', "
                             "found before training:\n  " + "\n  ".join(problems))
        if tokenizer_state is None:
            sentences = [row["translation"] for row in data.read_split(root, "train")]
            kind = "mbart" if cfg.pretrained else "sentencepiece"
            tok = tokenizer.load_or_build_tokenizer(kind, sentences, args.out, mbart_name=cfg.mbart,
                                                    rebuild=is_main() and not resume, lang=lang)
        else:
            tok = tokenizer.Tokenizer.from_state(tokenizer_state)
    cfg = dataclasses.replace(cfg, vocab_size=tok.vocab_size)
    return Run(args, cfg, root, tok, device, lang)


def build(run: Run, kind: str, **kwargs):
    """The pre-training or translation model of the run's preset, on its device."""
    build_fn = model.build_pretrain_model if kind == "pretrain" else model.build_translation_model
    net = build_fn(run.cfg, keep_ids=run.tok.keep_ids, **kwargs)
    return sync_batch_norm(net).to(run.device) if dist.is_initialized() else net.to(run.device)


def loader(run: Run, split: str, train: bool, generator=None, ds=None, collate=data.collate):
    """A DataLoader over one split (or over `ds`): shuffled and augmented for training (each process its
    share of the --batch-size videos, which is the global batch), in order otherwise."""
    if ds is None:
        ds = data.Phoenix14T(run.root, split, train=train, size=run.cfg.image_size, max_frames=run.args.max_frames,
                             frame_stride=run.args.frame_stride, packed=run.args.packed, packed_dir=run.args.packed_dir)
    rank, n = world()
    if run.args.batch_size % n:
        raise SystemExit(f"--batch-size {run.args.batch_size} is the global batch: it must divide by {n} processes")
    sampler = None
    if train and n > 1:
        sampler = torch.utils.data.DistributedSampler(ds, n, rank, shuffle=True, seed=run.args.seed, drop_last=True)
    return torch.utils.data.DataLoader(
        ds, batch_size=run.args.batch_size // n, shuffle=train and sampler is None, sampler=sampler,
        generator=generator, drop_last=train and len(ds) > run.args.batch_size, num_workers=run.args.workers,
        collate_fn=collate, pin_memory=run.device.type == "cuda", persistent_workers=run.args.workers > 0)


def text_batch(tok, sentences, device, max_tokens: int = 100):
    """mBART's formats: source `x </s> de_DE` for the text encoder; decoder input `de_DE x`, labels `x </s>`."""
    pieces = [tok.encode(s)[:max_tokens] for s in sentences]

    def pad(rows):
        ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(r) for r in rows], batch_first=True,
                                              padding_value=tok.pad_id).to(device)   # [B, L]
        return ids, ids != tok.pad_id

    source = pad([p + [tok.eos_id, tok.lang_id] for p in pieces])
    decoder_input = pad([[tok.lang_id] + p for p in pieces])
    labels, _ = pad([p + [tok.eos_id] for p in pieces])
    return source, decoder_input, labels


def autocast(device):
    """bf16 autocast on GPU; full precision on CPU."""
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                          enabled=torch.device(device).type == "cuda")


# ----------------------------------------------------------------------------------------------
# Optimisation and checkpoints


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


def trainable_state(net, keep: set = None) -> dict:
    """The weights a checkpoint keeps: trainable parameters (or those named in `keep`) and buffers;
    frozen weights come from the hub."""
    keep = keep or {n for n, p in net.named_parameters() if p.requires_grad}
    keep = keep | {n for n, _ in net.named_buffers()}
    return {k: v.detach().cpu() for k, v in net.state_dict().items() if k in keep}


save_checkpoint, load_checkpoint = runs.save_checkpoint, runs.load_checkpoint


def check_matches(run: Run, ckpt: dict, path, flags: bool = False, ignore=()):
    """A checkpoint read to go on from must match this run: its config (the weights' shapes and meaning), its
    tokenizer (what the ids mean) and, for --resume, its schedule flags. Every mismatch is named."""
    cfg = dataclasses.asdict(run.cfg)
    wrong = runs.differences(ckpt["config"], cfg, ignore=("dino", "mbart", *ignore))
    if ckpt["tokenizer"]["fingerprint"] != run.tok.fingerprint():
        wrong.append(f"tokenizer: {ckpt['tokenizer']['fingerprint'][:12]} -> {run.tok.fingerprint()[:12]} "
                     "(built from other annotations?)")
    if flags:
        wrong += ["--" + d.replace("_", "-") for d in runs.differences(ckpt["flags"], runs.schedule_flags(run.args))]
    if wrong:
        raise SystemExit(f"'{path}' does not match this run (saved -> now): " + "; ".join(wrong) +
                         (". --resume continues a run with its own flags: pass them as they were, or start over "
                          "with --overwrite or another --out" if flags else ""))


def load_weights(net, state: dict):
    """Load a trainable-only state dict; every key must exist in the model."""
    missing_in_model = set(state) - set(net.state_dict())
    if missing_in_model:
        raise KeyError(f"checkpoint keys not in the model: {sorted(missing_in_model)[:5]}")
    net.load_state_dict(state, strict=False)


# ----------------------------------------------------------------------------------------------
# The training loop, shared by pre-training and both fine-tuning stages


def train_mode(net):
    """Training mode for what trains; every module whose parameters are all frozen runs as at inference
    (fixed BatchNorm statistics, no dropout), e.g. fine-tuning stage 1's mBART encoder beside the decoder."""
    net.train()
    for m in net.modules():
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):
            m.eval()


def fit(run: Run, net, step, validate, epochs: int, name: str, lower_is_better: bool,
        best_name: str = None, best: float = None, keep: set = None, ds=None, collate=data.collate, extra=None):
    """Train `net` for `epochs` epochs with `step(model, batch) -> (loss, logs)`; after each epoch
    `validate(net) -> (metric, logs)`. Keeps the weights with the best metric so far (`best`, from an
    earlier stage) in <out>/<best_name>.pt, and the full state in <out>/<name>.last.pt, from which
    --resume continues. Checkpoints hold the trainable weights, or those named in `keep`.
    `ds`, `collate`: a dataset to train on instead of the training videos, and its collate function; `extra`:
    more that the best checkpoint carries (pre-training: the pseudo-gloss vocabulary)."""
    args, out = run.args, run.args.out
    if epochs == 0:  # a stage that is skipped (finetune.py --stage1-epochs 0)
        return (math.inf if lower_is_better else -math.inf) if best is None else best
    gen = torch.Generator()
    train_loader = loader(run, "train", train=True, generator=gen, ds=ds, collate=collate)
    optimizer = torch.optim.AdamW(param_groups(net, args.weight_decay), lr=args.lr)
    scheduler = one_cycle(optimizer, args.warmup_epochs * len(train_loader), epochs * len(train_loader))
    best_path, last = out / f"{best_name or name}.pt", out / f"{name}.last.pt"
    start = 0
    if best is None:
        best = math.inf if lower_is_better else -math.inf
    if args.resume and last.exists():
        state = load_checkpoint(last, (best_name or name).split("-")[0], role="last")
        check_matches(run, state, last, flags=True)
        load_weights(net, state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        best, start = state["best"], state["epoch"]
        log(f"{name}: resumed from {last} after epoch {start}")
    elif args.resume:
        log(f"{name}: nothing to resume in {out}, starting from the first epoch")
    kind = (best_name or name).split("-")[0]  # pretrain or finetune: what the checkpoints hold
    about = dict(kind=kind, config=dataclasses.asdict(run.cfg), tokenizer=run.tok.state(),
                 flags=runs.schedule_flags(args), lang=run.lang)
    train_net = data_parallel(net)
    if args.compile:  # checkpoints read `net`, so their keys carry no `_orig_mod.` prefix
        train_net = torch.compile(train_net)
    writer = SummaryWriter(out) if is_main() else None
    params = [p for p in net.parameters() if p.requires_grad]
    stop = min(epochs, start + args.stop_after) if args.stop_after else epochs
    for epoch in range(start, stop):
        torch.manual_seed(args.seed + epoch)  # data order, augmentation and dropout: resumable exactly
        gen.manual_seed(args.seed + epoch)
        if isinstance(train_loader.sampler, torch.utils.data.DistributedSampler):
            train_loader.sampler.set_epoch(epoch)
        train_mode(net)
        t0, sums, finite = time.time(), {}, []
        bar = tqdm(train_loader, desc=f"{name} {epoch + 1}/{epochs}", leave=False, dynamic_ncols=True,
                   disable=not is_main())
        for i, batch in enumerate(bar):
            with autocast(run.device):
                loss, logs = step(train_net, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            for k, v in logs.items():  # summed on the device: no GPU sync per step
                sums[k] = sums.get(k, 0.0) + v.detach()
            finite.append(torch.stack([torch.isfinite(v.detach()).all() for v in logs.values()]))
            if i % 10 == 0 or i == len(train_loader) - 1:  # checked where the loop syncs anyway, before any save
                check_finite(finite, logs, f"{name} epoch {epoch + 1}", i + 2 - len(finite))
                finite = []
                bar.set_postfix(loss=f"{loss.item():.3f}")
        metric, val_logs = validate(net)
        check_finite([torch.tensor([math.isfinite(v) for v in val_logs.values()])], val_logs,
                     f"{name} epoch {epoch + 1} validation")
        if not is_main():
            continue
        logs = {f"train/{k}": float(v) / len(train_loader) for k, v in sums.items()}
        logs |= {f"val/{k}": v for k, v in val_logs.items()}
        for k, v in logs.items():
            writer.add_scalar(f"{name}/{k}", v, epoch + 1)
        improved = metric < best if lower_is_better else metric > best
        weights = trainable_state(net, keep)
        if improved:
            best = metric
            save_checkpoint(best_path, **about, role="best", model=weights, epoch=epoch + 1, metric=metric,
                            **(extra or {}))
        save_checkpoint(last, **about, role="last", model=weights, optimizer=optimizer.state_dict(),
                        scheduler=scheduler.state_dict(), epoch=epoch + 1, best=best)
        print(f"{name} epoch {epoch + 1}/{epochs} " + " ".join(f"{k} {v:.4f}" for k, v in logs.items())
              + f" lr {scheduler.get_last_lr()[0]:.2e} {time.time() - t0:.0f}s" + (" *best*" if improved else ""),
              flush=True)
    if writer:
        writer.close()
    if is_main() and not best_path.is_file() and stop > start:
        raise RuntimeError(f"{name}: {stop - start} epochs trained but no checkpoint was written to {best_path}")
    return best


def check_finite(finite: list, logs: dict, where: str, first_step: int = None):
    """Stop at a non-finite loss: `finite` holds, per step from `first_step` on, whether each term of `logs`
    was finite; the error names the epoch, the step and the terms (no checkpoint of the broken weights is written)."""
    ok = torch.stack(finite).cpu()                                               # [steps, terms]
    if ok.all():
        return
    step, _ = (~ok).nonzero()[0].tolist()
    bad = [k for k, good in zip(logs, ok[step].tolist()) if not good]
    raise FloatingPointError(f"{where}" + (f" step {first_step + step}" if first_step is not None else "") +
                             f": non-finite loss term(s) {', '.join(bad)}; the run stops here (no checkpoint of "
                             "these weights was written). Lower --lr, or check the data (pseudo-glosses, translations)")


# ----------------------------------------------------------------------------------------------
# Data-parallel set-up: only for `torchrun --nproc_per_node N`; one process needs none of it


def init_distributed(device: str) -> torch.device:
    """Data-parallel training under torchrun (NCCL on GPU, gloo on CPU); a plain device otherwise."""
    if int(os.environ.get("WORLD_SIZE", 1)) == 1:
        return torch.device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(device)


def data_parallel(net):
    """Gradients averaged over processes; the pre-training text embedding may go unused in a step."""
    return DistributedDataParallel(net, find_unused_parameters=True) if dist.is_initialized() else net


class SyncedBatchNorm(torch.nn.BatchNorm1d):
    """The frame head's BatchNorm with mean and variance over the valid frames of every process, as one process
    would compute them on the global batch (any device, unlike nn.SyncBatchNorm); differentiable."""

    def forward(self, x):
        # x [N, C], this process's valid frames
        if not self.training:
            return super().forward(x)
        x = x.float()
        stats = dist_nn.all_reduce(torch.cat([x.sum(0), (x * x).sum(0), x.new_full((1,), len(x))]))  # summed
        C, n = x.shape[1], stats[-1]
        mean = stats[:C] / n
        var = stats[C:-1] / n - mean ** 2
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def sync_batch_norm(net):
    """Every BatchNorm1d of `net` replaced by a SyncedBatchNorm holding the same state, as
    nn.SyncBatchNorm.convert_sync_batchnorm does."""
    for parent in list(net.modules()):
        for name, bn in list(parent.named_children()):
            if type(bn) is torch.nn.BatchNorm1d:
                synced = SyncedBatchNorm(bn.num_features, bn.eps, bn.momentum, device=bn.weight.device)
                synced.load_state_dict(bn.state_dict())
                setattr(parent, name, synced)
    return net


def world() -> tuple:
    """(rank, number of processes)."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def is_main() -> bool:
    """Only the first process writes checkpoints, logs and files."""
    return world()[0] == 0


def log(*args):
    """print, in the first process only."""
    if is_main():
        print(*args, flush=True)


@contextlib.contextmanager
def main_process_first():
    """Run a block in the first process, then in the others (which then find its files)."""
    if not is_main():
        dist.barrier()
    yield
    if is_main() and dist.is_initialized():
        dist.barrier()
