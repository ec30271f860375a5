"""Checkpoints (DESIGN.md "Runs and checkpoints"): written atomically, holding what they need to be used alone
(weights, config, tokenizer, the flags that fix the result), checked when read; --resume and the lineage of a
fine-tuned model to its pre-training."""
import dataclasses
import hashlib
import json
import pickle
import zipfile
from pathlib import Path

import torch

import data
import tokenizer
from harness import files, outdir, parallel


def trainable_state(net, names: set = None) -> dict:
    """The weights a checkpoint holds: trainable parameters (or those named in `names`) and buffers;
    frozen weights come from the hub."""
    names = names or {n for n, p in net.named_parameters() if p.requires_grad}
    names = names | {n for n, _ in net.named_buffers()}
    return {k: v.detach().cpu() for k, v in net.state_dict().items() if k in names}


def dataset_fingerprint(root) -> str:
    """sha256 of the training and dev videos' names and translations, as read from the annotations of any layout:
    what a run learns from and is kept by."""
    rows = [(r["name"], r["translation"]) for split in ("train", "dev") for r in data.read_split(root, split)]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def result_flags(setup, names: tuple) -> dict:
    """The values of the flags `names` that fix the run's result, as plain values, and the dataset's fingerprint."""
    unknown = [n for n in names if n not in vars(setup.args)]
    if unknown:
        raise ValueError(f"result flags {unknown} are not flags of this script")
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(setup.args).items() if k in names} | \
        {"dataset": dataset_fingerprint(setup.root)}


def check_matches(setup, ckpt: dict, path, flags: dict = None, ignore=()):
    """A checkpoint read to go on from must match this run: its config (the weights' shapes and meaning), its
    tokenizer (what the ids mean) and, for --resume, the flags that fix the result (`flags`, this run's) and
    the dataset. Every mismatch is named."""
    wrong = differences(ckpt["config"], dataclasses.asdict(setup.cfg), ignore=("dino", "mbart", *ignore))
    if ckpt["tokenizer"]["fingerprint"] != setup.tok.fingerprint():
        wrong.append(f"tokenizer: {ckpt['tokenizer']['fingerprint'][:12]} -> {setup.tok.fingerprint()[:12]} "
                     "(built from other annotations?)")
    if flags is not None:
        saved, dataset = dict(ckpt["flags"]), ckpt["flags"].get("dataset")
        saved.pop("dataset", None)
        wrong += [f"--{k.replace('_', '-')}: {saved.get(k)!r} -> {flags.get(k)!r}"
                  for k in sorted(set(saved) | set(flags)) if k != "dataset" and saved.get(k) != flags.get(k)]
        if dataset != flags["dataset"]:
            wrong.append(f"the dataset (sha256 of its train and dev names and translations): {str(dataset)[:12]} -> "
                         f"{flags['dataset'][:12]}")
    if wrong:
        raise SystemExit(f"'{path}' does not match this run (saved -> now): " + "; ".join(wrong) +
                         (". --resume continues a run with its own flags and data: pass them as they were, or "
                          "start over with --overwrite or another --out; nothing was moved aside"
                          if flags is not None else ""))


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

    def __init__(self, setup, kind: str, name: str, flag_names: tuple, names: set = None,
                 extra: dict = None):
        self.setup, self.kind, self.name, self.names, self.extra = setup, kind, name, names, extra or {}
        self.best_path, self.last_path = setup.args.out / f"{kind}.pt", setup.args.out / f"{name}.last.pt"
        self.about = dict(kind=kind, config=dataclasses.asdict(setup.cfg), tokenizer=setup.tok.state(),
                          flags=result_flags(setup, flag_names), lang=setup.lang)
        self.state = None  # with --resume, the last state, read and checked here, before the stage's long work
        if setup.args.resume and self.last_path.exists():
            self.state = load_checkpoint(self.last_path, kind, role="last")
            check_matches(setup, self.state, self.last_path, flags=self.about["flags"])
        if parallel.is_main():  # the later stages' files move aside only now, when --resume has been checked
            outdir.commit(setup.args.out)

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
            parallel.log(f"{self.name}: resumed from {self.last_path} after epoch {start}")
        elif args.resume:
            parallel.log(f"{self.name}: nothing to resume in {args.out}, starting from the first epoch")
        return range(start, min(epochs, start + args.stop_after) if args.stop_after else epochs), best

    def save_best(self, net, epoch: int, metric: float):
        """The weights after `epoch` (0-based), kept as <out>/<kind>.pt with their metric."""
        if parallel.is_main():
            save_checkpoint(self.best_path, **self.about, role="best", model=trainable_state(net, self.names),
                            epoch=epoch + 1, metric=metric, **self.extra)

    def save_last(self, net, optimizer, scheduler, epoch: int, best: float):
        """The full state after `epoch` (0-based), what --resume continues: <out>/<name>.last.pt."""
        if parallel.is_main():
            save_checkpoint(self.last_path, **self.about, role="last", model=trainable_state(net, self.names),
                            optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(), epoch=epoch + 1,
                            best=best)


def file_digest(path) -> str:
    """sha256 of a file's bytes: a fine-tuned checkpoint records its pre-training's, its lineage (evaluate.py)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def save_checkpoint(path: Path, **content):
    """torch.save, atomically."""
    files.atomic_write(path, lambda tmp: torch.save(content, tmp))


REQUIRED = {"best": ("kind", "role", "model", "config", "tokenizer", "flags", "epoch", "metric"),
            "last": ("kind", "role", "model", "config", "tokenizer", "flags", "epoch", "optimizer", "scheduler",
                     "best")}
HINT = {"pretrain": "pretrain.py's <out>/pretrain.pt", "finetune": "finetune.py's <out>/finetune.pt"}


def load_checkpoint(path, kind: str = None, role: str = "best") -> dict:
    """A checkpoint of this project: plain tensors and values (weights_only=True), of the expected kind
    ('pretrain' or 'finetune') and role ('best' weights, or the 'last' state that --resume reads), whose tokenizer
    passes Tokenizer.from_state's checks (file names, fingerprint recomputed from the stored bytes).
    Anything else is an error naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise SystemExit(f"checkpoint '{path}' is empty (0 bytes): the file was cut off or never written")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise SystemExit(f"checkpoint '{path}' cannot be read: not a torch file (cut off, or another kind of file)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused an object: not something this project writes
        raise SystemExit(f"'{path}' is not a checkpoint of this project: it holds Python objects other than "
                         "tensors and plain values, which are not loaded") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise SystemExit(f"checkpoint '{path}' cannot be read ({type(e).__name__}: {str(e)[:200]}): "
                         "truncated or not a torch file") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise SystemExit(f"'{path}' is not a checkpoint of this project (no model weights in it)")
    got = (ckpt.get("kind"), ckpt.get("role"))
    if role == "best" and got[1] == "last":
        raise SystemExit(f"'{path}' is the state --resume continues from ({got[0]}, after epoch {ckpt.get('epoch')}), "
                         f"not the kept weights: pass {HINT.get(kind, got[0] + '.pt')}")
    missing = [k for k in REQUIRED[role] if k not in ckpt]
    if missing:
        raise SystemExit(f"checkpoint '{path}' lacks {', '.join(missing)} (not a checkpoint of this "
                         "project's pretrain.py or finetune.py)")
    if kind and got[0] != kind:
        raise SystemExit(f"'{path}' is a {got[0]} checkpoint; this needs a {kind} one: {HINT[kind]}")
    try:  # a checkpoint is data, never a path: its tokenizer's file names and fingerprint, before anything is written
        tokenizer.Tokenizer.from_state(ckpt["tokenizer"])
    except ValueError as e:
        raise SystemExit(f"checkpoint '{path}' cannot be used: {e}; nothing was written") from None
    return ckpt


def differences(saved: dict, current: dict, ignore=()) -> list[str]:
    """'name: saved -> current' for every key whose value differs (keys of either side)."""
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in sorted(set(saved) | set(current))
            if k not in ignore and saved.get(k) != current.get(k)]

