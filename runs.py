"""What keeps a run's work safe (DESIGN.md "Runs and checkpoints"): flag types that refuse nonsense where the
flags are parsed, the lock and the ownership rules of a run's folder (--out), and checkpoints that are written
atomically, carry what they need to be used alone and are checked when read.

Each script owns its files in --out: pretrain.py pretrain.pt and pretrain.last.pt (and the tokenizer files
and TensorBoard logs), finetune.py finetune.pt and finetune-stage{1,2}.last.pt, evaluate.py <split>.{hyp,ref}.txt.
A script that finds its files refuses to start unless told to --resume or --overwrite; starting over, or
continuing, moves the files of the later stages (made from the old weights) into <out>/replaced-<time>/.
"""
import argparse
import fcntl
import hashlib
import math
import os
import pickle
import shutil
import sys
import time
import zipfile
from pathlib import Path

import torch

import data
import tokenizer

# ----------------------------------------------------------------------------------------------
# Flag types: a bad value is an argparse error naming the flag (argparse adds "argument --flag: ")


def _number(kind, test, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got '{text}'") from None
        if not (math.isfinite(value) and test(value)):
            raise argparse.ArgumentTypeError(f"must be {what}, got '{text}'")
        return value
    parse.__name__ = what
    return parse


positive_int = _number(int, lambda v: v > 0, "a positive integer")
non_negative_int = _number(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _number(float, lambda v: v > 0, "a positive number")
non_negative_float = _number(float, lambda v: v >= 0, "a number >= 0")
fraction = _number(float, lambda v: 0 <= v < 1, "a number in [0, 1)")

# ----------------------------------------------------------------------------------------------
# The run's folder: one writer at a time, and no run written over without being asked

STAGES = ("pretrain", "finetune", "evaluate")  # each stage's files are made from the previous stage's
OWNED = {"pretrain": ("pretrain.pt", "pretrain.last.pt"),
         "finetune": ("finetune.pt", "finetune-stage1.last.pt", "finetune-stage2.last.pt"),
         "evaluate": ("{split}.hyp.txt", "{split}.ref.txt")}
# made by a stage but no reason to refuse: moved aside with the stage's files when it starts over
DERIVED = {"pretrain": ("tokenizer.json", "spm.model", "mbart-tokenizer", "events.out.tfevents.*")}
_locks = {}  # folder -> open lock file, held until the process ends (or release())


def lock(out: Path):
    """An exclusive lock on <out>/.lock (fcntl.flock; the kernel drops it when the process ends, however it ends).
    A second run into the same folder is refused; the same process may take it again."""
    out = Path(out).resolve()
    if out in _locks:
        return
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise SystemExit(f"'{out}' is in use by another run ({holder}): wait until it ends, or write to another --out")
    f.truncate(0)
    f.write(f"pid {os.getpid()}: {' '.join(sys.argv)}\n")
    f.flush()
    _locks[out] = f


def release(out: Path = None):
    """Give up the lock on `out` (every lock if None): for callers that run several scripts' main() in one process."""
    for folder in [Path(out).resolve()] if out else list(_locks):
        if folder in _locks:
            _locks.pop(folder).close()


def _existing(out: Path, patterns, **fields) -> list[Path]:
    return sorted({p for pattern in patterns for p in out.glob(pattern.format(**fields))})


def claim(out: Path, stage: str, resume: bool, overwrite: bool, split: str = None):
    """Lock --out for `stage`, then: its own files there and neither --resume nor --overwrite: refuse, naming
    the folder, the files and the ways on; --overwrite: move its files and those of the later stages aside;
    --resume: keep its files, move the later stages' aside (they were made from weights that change now); but
    --resume beside kept weights (pretrain.pt, finetune.pt) without a *.last.pt to continue from: refuse."""
    out = Path(out)
    lock(out)
    own = _existing(out, OWNED[stage], split=split or "*")
    if own and not resume and not overwrite:
        ways = ("continue it with --resume, " if stage != "evaluate" else "") + \
               "write to another folder with --out DIR, or start over with --overwrite (the old files are moved " \
               f"to '{out}/replaced-<time>/')"
        raise SystemExit(f"'{out}' already holds {stage}.py's files ({', '.join(p.name for p in own)}) of a finished "
                         f"or interrupted run; nothing was changed. To go on: {ways}.")
    kept, states = OWNED[stage][0], OWNED[stage][1:]
    if resume and stage != "evaluate" and (out / kept).exists() and not any((out / s).exists() for s in states):
        # a fresh start here would replace the kept weights with epoch 1's
        raise SystemExit(f"--resume: '{out}' holds {kept} but not {' or '.join(states)}, the state --resume "
                         f"continues from, so there is nothing to resume; nothing was changed. To go on: start over "
                         f"with --overwrite ({kept} is moved to '{out}/replaced-<time>/'), or write to another folder "
                         "with --out DIR.")
    later = [s for s in STAGES[STAGES.index(stage) + 1:]]
    moved = [p for s in later for p in _existing(out, OWNED[s], split="*")]
    if not resume:
        moved += own + _existing(out, DERIVED.get(stage, ()))
    if moved:
        dest = out / time.strftime("replaced-%Y%m%d-%H%M%S")
        while dest.exists():
            dest = dest.with_name(dest.name + "+")
        dest.mkdir()
        for p in moved:
            shutil.move(p, dest / p.name)
        why = "continuing" if resume else "starting over"
        print(f"{stage}: {why}; moved the earlier files {', '.join(p.name for p in moved)} to '{dest}'", flush=True)


# ----------------------------------------------------------------------------------------------
# Checkpoints: written atomically, self-contained, checked when read

def file_digest(path) -> str:
    """sha256 of a file's bytes: a fine-tuned checkpoint records its pre-training's, its lineage (evaluate.py)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def save_checkpoint(path: Path, **content):
    """torch.save, atomically."""
    data.atomic_write(path, lambda tmp: torch.save(content, tmp))


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
        raise SystemExit(f"checkpoint '{path}' lacks {', '.join(missing)} (written by an older version of "
                         "this project?): train it again")
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
