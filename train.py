"""The machinery that pretrain.py, finetune.py and evaluate.py share, kept apart so that those three read as
the paper's sections (§3.2, §3.3, §4.1) with their training loops in view: flags (and which of them fix the
result), set-up, data loaders, mBART's text formats, translation, the optimiser and its schedule, and what
the loops call for what is not method, one call each: checkpoints and --resume (Checkpoints), progress, logs
and the non-finite stop (Progress), data-parallel and --compile (for_training) (DESIGN.md "Training").
"""
import argparse
import contextlib
import dataclasses
import hashlib
import json
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
    ap.add_argument("--batch-size", type=runs.positive_int, default=16,
                    help="videos per step, over all processes (§4.2)")
    ap.add_argument("--workers", type=runs.non_negative_int, default=min(8, os.cpu_count() or 1),
                    help="data loading processes")
    ap.add_argument("--max-frames", type=runs.positive_int, default=300,
                    help="longer videos are subsampled evenly to this")
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
    ap.add_argument("--lr", type=runs.positive_float, default=3e-4,
                    help="peak learning rate of the one-cycle schedule (§4.2)")
    ap.add_argument("--weight-decay", type=runs.non_negative_float, default=1e-3, help="AdamW weight decay (§4.2)")
    ap.add_argument("--warmup-epochs", type=runs.non_negative_int, default=5,
                    help="epochs of warm-up before the cosine decay (§4.2)")
    ap.add_argument("--resume", action="store_true",
                    help="continue the interrupted run in --out (with the same flags)")
    ap.add_argument("--stop-after", type=runs.positive_int, help="stop after this many epochs (the schedule still "
                    "spans all of them); continue later with --resume, e.g. under a cluster's time limit")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model the training loop steps "
                    "(DESIGN.md \"Performance\"); validation, translation and checkpoints use the plain model")
    return ap


# The flags above that fix a training run's result: --resume refuses a change of any of them, naming it (each
# script adds its own: pretrain.RESULT_FLAGS, finetune.RESULT_FLAGS). --data also fixes it by the fingerprint of
# the dataset (dataset_fingerprint: its train and dev names and translations). Not among them: where and how
# fast (--device, --workers, --packed-dir, --out), how long this process runs (--stop-after), --compile, and
# --dino/--mbart, whose weights the config checks.
RESULT_FLAGS = ("data", "preset", "batch_size", "max_frames", "frame_stride", "packed", "seed", "lr", "weight_decay",
                "warmup_epochs")


def parse(ap: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse, and fill the defaults that depend on other flags."""
    args = ap.parse_args(argv)
    if getattr(args, "resume", False) and args.overwrite:
        ap.error("--resume continues the run in --out, --overwrite starts it over: pass one of them")
    args.preset = args.preset or ("tiny" if args.data in data.SYNTHETIC else "paper")
    args.out = args.out or Path("runs") / f"{Path(args.data).name}-{args.preset}"
    return args


# ----------------------------------------------------------------------------------------------
# Set-up: data root, tokenizer, config, model, loaders


@dataclass
class Setup:
    """What a script works with: its flags, the model config, the data root, the tokenizer and the device."""
    args: argparse.Namespace
    cfg: model.Config
    root: Path  # None for evaluate.py --video, which reads no dataset
    tok: tokenizer.Tokenizer
    device: torch.device
    lang: str = "de"  # the translations' language: pseudo-glosses, mBART's language code, scoring


def setup(args, config: dict = None, stage: str = None, tokenizer_state: dict = None, splits=("train", "dev")):
    """Resolve the data, claim --out for `stage` (lock; refuse to write over a run: runs.claim), check every
    video of `splits`, build the tokenizer (or take a checkpoint's, `tokenizer_state`) and fix the config
    (from a checkpoint when given). -> Setup"""
    device = init_distributed(args.device)
    torch.manual_seed(getattr(args, "seed", 0))
    names = {k: v for k, v in (("dino", args.dino), ("mbart", args.mbart)) if v}
    cfg = dataclasses.replace(model.get_config(args.preset) if config is None else model.Config(**config), **names)
    cfg = model.widths_from_checkpoints(cfg) if config is None else cfg
    with main_process_first():  # one process generates data and tokenizer files, the others read them
        # no split and a checkpoint's tokenizer (evaluate.py --video): no dataset is read, or needed
        root = data.resolve_root(args.data) if splits or tokenizer_state is None else None
        lang = language(root, args.lang, tokenizer_state)
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
    return Setup(args, cfg, root, tok, device, lang)


def language(root, lang_flag: str = None, tokenizer_state: dict = None) -> str:
    """The translations' language: --lang, else the dataset's layout (data.dataset_language); with no dataset
    (evaluate.py --video) the checkpoint's. A checkpoint's tokenizer of another language is refused."""
    saved = (tokenizer_state or {}).get("lang_code", "de_DE")  # a checkpoint's (older ones: German)
    codes = {code: lang for lang, code in tokenizer.LANG_CODES.items()}
    lang = data.dataset_language(root, lang_flag) if root is not None else lang_flag or codes.get(saved, "de")
    if tokenizer_state is not None and saved != tokenizer.lang_code(lang):
        raise SystemExit(f"the checkpoint's tokenizer is {saved}, the data under '{root}' is {lang} "
                         f"({tokenizer.lang_code(lang)}): pass the run and the data of one language")
    return lang


def build(setup: Setup, kind: str, **kwargs):
    """The pre-training or translation model of the run's preset, on its device."""
    build_fn = model.build_pretrain_model if kind == "pretrain" else model.build_translation_model
    net = build_fn(setup.cfg, keep_ids=setup.tok.keep_ids, **kwargs)
    return sync_batch_norm(net).to(setup.device) if dist.is_initialized() else net.to(setup.device)


def loader(setup: Setup, split: str, train: bool, ds=None, collate=data.collate):
    """A DataLoader over one split (or over `ds`): shuffled and augmented for training (each process its
    share of the --batch-size videos, which is the global batch; its generator reseeded by start_epoch),
    in order otherwise."""
    args = setup.args
    if ds is None:
        ds = data.Phoenix14T(setup.root, split, train=train, size=setup.cfg.image_size, max_frames=args.max_frames,
                             frame_stride=args.frame_stride, packed=args.packed, packed_dir=args.packed_dir)
    rank, n = world()
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


def autocast(device):
    """bf16 autocast on GPU; full precision on CPU."""
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                          enabled=torch.device(device).type == "cuda")


@torch.no_grad()
def translate(net, loader, tok, device, num_beams: int = 4, max_new_tokens: int = 150, desc="translate"):
    """Beam search (§4.1): hypotheses and references for every video of `loader`, in its order; fine-tuning's
    dev BLEU-4 and evaluate.py both translate with it."""
    was_training = net.training
    net.eval()
    hyps, refs = [], []
    for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True, disable=not is_main()):
        frames, mask = data.prepare(batch, device, train=False)
        with autocast(device):
            ids = net.translate(frames, mask, tok.lang_id, tok.eos_id, tok.pad_id, num_beams, max_new_tokens)
        hyps += [tok.decode(row.tolist()) for row in ids]
        refs += batch["translations"]
    net.train(was_training)
    return hyps, refs


# ----------------------------------------------------------------------------------------------
# The optimiser and its schedule (§4.2), and the mode the loop trains in


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


def for_training(net, compile: bool = False):
    """The model the loop steps: `net` data-parallel under torchrun, torch.compile'd with --compile. Checkpoints,
    validation and translation use `net` itself, so their keys carry no `_orig_mod.`/`module.` prefix."""
    stepped = data_parallel(net)
    return torch.compile(stepped) if compile else stepped


# ----------------------------------------------------------------------------------------------
# Checkpoints: what they hold, as the caller says; --resume and the flags that fix a run's result


def trainable_state(net, names: set = None) -> dict:
    """The weights a checkpoint holds: trainable parameters (or those named in `names`) and buffers;
    frozen weights come from the hub."""
    names = names or {n for n, p in net.named_parameters() if p.requires_grad}
    names = names | {n for n, _ in net.named_buffers()}
    return {k: v.detach().cpu() for k, v in net.state_dict().items() if k in names}


save_checkpoint, load_checkpoint = runs.save_checkpoint, runs.load_checkpoint


def dataset_fingerprint(root) -> str:
    """sha256 of the training and dev videos' names and translations, as read from the annotations of any layout:
    what a run learns from and is kept by."""
    rows = [(r["name"], r["translation"]) for split in ("train", "dev") for r in data.read_split(root, split)]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def result_flags(setup: Setup, names: tuple) -> dict:
    """The values of the flags `names` that fix the run's result, as plain values, and the dataset's fingerprint."""
    unknown = [n for n in names if n not in vars(setup.args)]
    if unknown:
        raise ValueError(f"result flags {unknown} are not flags of this script")
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(setup.args).items() if k in names} | \
        {"dataset": dataset_fingerprint(setup.root)}


def check_matches(setup: Setup, ckpt: dict, path, flags: dict = None, ignore=()):
    """A checkpoint read to go on from must match this run: its config (the weights' shapes and meaning), its
    tokenizer (what the ids mean) and, for --resume, the flags that fix the result (`flags`, this run's) and
    the dataset. Every mismatch is named."""
    wrong = runs.differences(ckpt["config"], dataclasses.asdict(setup.cfg), ignore=("dino", "mbart", *ignore))
    if ckpt["tokenizer"]["fingerprint"] != setup.tok.fingerprint():
        wrong.append(f"tokenizer: {ckpt['tokenizer']['fingerprint'][:12]} -> {setup.tok.fingerprint()[:12]} "
                     "(built from other annotations?)")
    if flags is not None:
        saved, dataset = dict(ckpt["flags"]), ckpt["flags"].get("dataset")
        saved.pop("dataset", None)
        wrong += ["--" + d.replace("_", "-") for d in runs.differences(saved, flags, ignore=("dataset",))]
        if dataset != flags["dataset"]:
            wrong.append(f"the dataset (sha256 of its train and dev names and translations): {str(dataset)[:12]} -> "
                         f"{flags['dataset'][:12]}")
    if wrong:
        raise SystemExit(f"'{path}' does not match this run (saved -> now): " + "; ".join(wrong) +
                         (". --resume continues a run with its own flags and data: pass them as they were, or "
                          "start over with --overwrite or another --out" if flags is not None else ""))


def load_weights(net, state: dict):
    """Load a trainable-only state dict; every key must exist in the model."""
    missing_in_model = set(state) - set(net.state_dict())
    if missing_in_model:
        raise KeyError(f"checkpoint keys not in the model: {sorted(missing_in_model)[:5]}")
    net.load_state_dict(state, strict=False)


class Checkpoints:
    """A training stage's files in --out, which say what they hold because the caller says so: `kind`
    ('pretrain' or 'finetune') is what the weights are, <out>/<kind>.pt the kept (best) weights, what the next
    stage reads, and <out>/<name>.last.pt the full state after the last epoch, what --resume continues.
    Both hold the parameters named in `names` (default: those that train) and buffers, the config, the
    tokenizer and the values of the flags `flag_names` (result_flags); `extra` is more that the kept weights
    carry. Only the first process writes."""

    def __init__(self, setup: Setup, kind: str, name: str, flag_names: tuple, names: set = None,
                 extra: dict = None):
        self.setup, self.kind, self.name, self.names, self.extra = setup, kind, name, names, extra or {}
        self.best_path, self.last_path = setup.args.out / f"{kind}.pt", setup.args.out / f"{name}.last.pt"
        self.about = dict(kind=kind, config=dataclasses.asdict(setup.cfg), tokenizer=setup.tok.state(),
                          flags=result_flags(setup, flag_names), lang=setup.lang)
        self.state = None  # with --resume, the last state, read and checked here, before the stage's long work
        if setup.args.resume and self.last_path.exists():
            self.state = load_checkpoint(self.last_path, kind, role="last")
            check_matches(setup, self.state, self.last_path, flags=self.about["flags"])

    def resume(self, net, optimizer, scheduler, epochs: int, best: float) -> tuple:
        """With --resume and a last state (checked when this was made: config, tokenizer, result flags and
        dataset are this run's): its weights, optimiser and schedule loaded. -> (the epochs left to run in this
        process, at most --stop-after of them; the best metric so far)."""
        args, start, state = self.setup.args, 0, self.state
        if state is not None:
            load_weights(net, state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            best, start, self.state = state["best"], state["epoch"], None
            log(f"{self.name}: resumed from {self.last_path} after epoch {start}")
        elif args.resume:
            log(f"{self.name}: nothing to resume in {args.out}, starting from the first epoch")
        return range(start, min(epochs, start + args.stop_after) if args.stop_after else epochs), best

    def save_best(self, net, epoch: int, metric: float):
        """The weights after `epoch` (0-based), kept as <out>/<kind>.pt with their metric."""
        if is_main():
            save_checkpoint(self.best_path, **self.about, role="best", model=trainable_state(net, self.names),
                            epoch=epoch + 1, metric=metric, **self.extra)

    def save_last(self, net, optimizer, scheduler, epoch: int, best: float):
        """The full state after `epoch` (0-based), what --resume continues: <out>/<name>.last.pt."""
        if is_main():
            save_checkpoint(self.last_path, **self.about, role="last", model=trainable_state(net, self.names),
                            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), epoch=epoch + 1,
                            best=best)


# ----------------------------------------------------------------------------------------------
# Progress: the bar, the loss terms' sums, the non-finite stop, TensorBoard and the epoch's line


class Progress:
    """What the loop shows and records: a progress bar over each epoch's batches; the loss terms of each step
    summed on the device and checked to be finite every 10 steps (no GPU sync per step), so that a non-finite
    loss stops the run before any checkpoint of those weights; TensorBoard scalars <name>/train/* and
    <name>/val/* and one printed line per epoch (first process only)."""

    def __init__(self, setup: Setup, name: str, epochs: int):
        self.name, self.epochs = name, epochs
        self.writer = SummaryWriter(setup.args.out) if is_main() else None

    def batches(self, loader, epoch: int):
        """The batches of one epoch (0-based), under a progress bar."""
        self.epoch, self.sums, self.finite, self.val = epoch, {}, [], {}
        self.t0, self.n = time.time(), len(loader)
        self.bar = tqdm(loader, desc=f"{self.name} {epoch + 1}/{self.epochs}", leave=False, dynamic_ncols=True,
                        disable=not is_main())
        for self.i, batch in enumerate(self.bar):
            yield batch

    def step(self, **terms):
        """One step's loss terms (tensors), e.g. step(loss=loss, align=align, psp=psp)."""
        for k, v in terms.items():  # summed on the device: no GPU sync per step
            self.sums[k] = self.sums.get(k, 0.0) + v.detach()
        self.finite.append(torch.stack([torch.isfinite(v.detach()).all() for v in terms.values()]))
        if self.i % 10 == 0 or self.i == self.n - 1:  # checked where the loop syncs anyway, before any save
            check_finite(self.finite, terms, f"{self.name} epoch {self.epoch + 1}", self.i + 2 - len(self.finite))
            self.finite = []
            self.bar.set_postfix(loss=f"{next(iter(terms.values())).item():.3f}")

    def validated(self, val: dict) -> dict:
        """The validation's values ({} in an epoch that does not validate), once checked to be finite."""
        check_finite([torch.tensor([math.isfinite(v) for v in val.values()], dtype=torch.bool)], val,
                     f"{self.name} epoch {self.epoch + 1} validation")
        self.val = val
        return val

    def end_epoch(self, lr: float, improved: bool):
        """The epoch's mean training terms and validation values to TensorBoard, and its printed line."""
        if not is_main():
            return
        logs = {f"train/{k}": float(v) / self.n for k, v in self.sums.items()}
        logs |= {f"val/{k}": v for k, v in self.val.items()}
        for k, v in logs.items():
            self.writer.add_scalar(f"{self.name}/{k}", v, self.epoch + 1)
        print(f"{self.name} epoch {self.epoch + 1}/{self.epochs} "
              + " ".join(f"{k} {v:.4f}" for k, v in logs.items())
              + f" lr {lr:.2e} {time.time() - self.t0:.0f}s" + (" *best*" if improved else ""), flush=True)

    def close(self):
        if self.writer:
            self.writer.close()


def check_finite(finite: list, logs: dict, where: str, first_step: int = None):
    """Stop at a non-finite loss: `finite` holds, per step from `first_step` on, whether each term of `logs`
    was finite; the error names the epoch, the step and the terms (no checkpoint of the broken weights is
    written)."""
    ok = torch.stack(finite).cpu()                                               # [steps, terms]
    if ok.all():
        return
    step, _ = (~ok).nonzero()[0].tolist()
    bad = [k for k, good in zip(logs, ok[step].tolist()) if not good]
    raise FloatingPointError(f"{where}" + (f" step {first_step + step}" if first_step is not None else "") +
                             f": non-finite loss term(s) {', '.join(bad)}; the run stops here (no checkpoint of "
                             "these weights was written). Lower --lr, or check the data (pseudo-glosses, "
                             "translations)")


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
