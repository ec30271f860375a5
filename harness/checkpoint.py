"""Checkpoints (DESIGN.md "Runs and checkpoints"): the kept weights, a Hugging Face folder (harness/hf_folder.py),
and the state --resume continues (a torch file holding weights, optimiser, schedule, config, tokenizer, flags),
both written atomically and checked when read."""
import dataclasses
import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path

import torch

import data
import tokenizer
from corpora import files
from harness import hf_folder


def trainable_state(net, names: set = None) -> dict:
    """The weights a checkpoint holds: trainable parameters (or those named in `names`) and buffers;
    frozen weights come from the bases."""
    return hf_folder.trainable_state(net, names or {n for n, p in net.named_parameters() if p.requires_grad})


def dataset_fingerprint(root) -> str:
    """sha256 of the training and dev videos' names and translations, as read from the annotations of any layout:
    what a run learns from and is kept by."""
    rows = [(r["name"], r["translation"]) for split in ("train", "dev") for r in data.read_split(root, split)]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def dataset_of(setup) -> str:
    """Which dataset a run learns from, as the model card names it (card.DATASETS): a synthetic corpus by its
    name, else the root's layout."""
    return "synthetic" if Path(str(setup.args.data)).name in data.SYNTHETIC else data.detect_layout(setup.root)


def result_flags(setup, names: tuple) -> dict:
    """The values of the flags `names` that fix the run's result, as plain values, and the dataset's fingerprint;
    what training.json and the model card publish, so no path of this machine: --data is recorded as the dataset
    (dataset_of: its layout, or the synthetic corpus), whose content the fingerprint identifies wherever it lies;
    any other flag naming a file or folder here (--fasttext, --pretrained) by its last name (a hub id as it is)."""
    unknown = [n for n in names if n not in vars(setup.args)]
    if unknown:
        raise ValueError(f"result flags {unknown} are not flags of this script")
    values = {k: public(v) for k, v in vars(setup.args).items() if k in names}
    if "data" in values:
        values["data"] = dataset_of(setup)
    return values | {"dataset": dataset_fingerprint(setup.root)}


def public(value):
    """A flag's value as training.json records it: a path of this machine (absolute, or naming what is here) by its
    last name; anything else as it is."""
    if isinstance(value, Path) or isinstance(value, str) and value and (os.path.isabs(value) or
                                                                       os.path.lexists(value)):
        return Path(value).name
    return value


def check_matches(setup, config: dict, fingerprint: str, path, flags: dict = None, saved_flags: dict = None,
                  ignore=()):
    """Weights read to go on from must match this run: their config (the weights' shapes and meaning), their
    tokenizer's `fingerprint` (what the ids mean) and, for --resume, the flags that fix the result (`flags`, this
    run's; `saved_flags`, the state's) and the dataset. Every mismatch is named."""
    wrong = differences(config, dataclasses.asdict(setup.cfg), ignore=("dino", "mbart", *ignore))
    if fingerprint != setup.tok.fingerprint():
        wrong.append(f"tokenizer: {fingerprint[:12]} -> {setup.tok.fingerprint()[:12]} (built from other annotations?)")
    if flags is not None:
        saved, dataset = dict(saved_flags), saved_flags.get("dataset")
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


def load_weights(net, state: dict, path):
    """Load a trainable-only state dict (the last state of --resume, already read); every key must be one of the
    model's, of its shape."""
    own = net.state_dict()
    wrong = [f"'{k}' {list(v.shape)}" + (f", the model's {list(own[k].shape)}" if k in own else ", not in the model")
             for k, v in state.items() if k not in own or own[k].shape != v.shape]
    if wrong:
        raise SystemExit(f"'{path}': tensor {wrong[0]} ({len(wrong)} such): not the weights of this run's model")
    net.load_state_dict(state, strict=False)


def save_checkpoint(path: Path, **content):
    """torch.save, atomically; a full disk is a clear error, and the old file stays."""
    try:
        files.atomic_write(path, lambda tmp: torch.save(content, tmp))
    except (OSError, RuntimeError) as e:  # torch reports a full disk as RuntimeError "unexpected pos"
        raise SystemExit(f"could not write '{path}' (a full disk?): {type(e).__name__}: {str(e)[:200]}; what was "
                         "there before is unchanged") from None


REQUIRED = ("kind", "role", "model", "config", "tokenizer", "flags", "epoch", "optimizer", "scheduler", "best")


def load_checkpoint(path, kind: str) -> dict:
    """The state --resume continues (<out>/<name>.last.pt, a torch file): a zip archive of stored entries no larger
    than the file (files.torch_archive_problem: no inflating), plain tensors and values (weights_only=True), of
    the expected kind, whose tokenizer passes Tokenizer.from_state's checks and whose weights are finite.
    Anything else is an error naming the file and what is wrong with it."""
    path = Path(path)
    problem = files.torch_archive_problem(path)
    if problem:
        raise SystemExit(f"--resume: '{path}' cannot be read: {problem}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused an object: not something this project writes
        raise SystemExit(f"--resume: '{path}' is not a state of this project: it holds Python objects other than "
                         "tensors and plain values, which are not loaded") from None
    except (EOFError, RuntimeError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise SystemExit(f"--resume: '{path}' cannot be read ({type(e).__name__}: {str(e)[:200]}): "
                         "truncated or not a torch file") from None
    missing = [k for k in REQUIRED if k not in ckpt] if isinstance(ckpt, dict) else list(REQUIRED)
    if missing or ckpt.get("kind") != kind or not isinstance(ckpt["model"], dict):
        raise SystemExit(f"--resume: '{path}' is not the last state of this project's {kind} stage "
                         f"({'it lacks ' + ', '.join(missing) if missing else 'kind ' + repr(ckpt.get('kind'))})")
    broken = [k for k, v in ckpt["model"].items() if not isinstance(v, torch.Tensor)
              or (v.is_floating_point() and not bool(torch.isfinite(v).all()))]
    if broken:
        raise SystemExit(f"--resume: '{path}': tensor '{broken[0]}' is not a tensor of finite values")
    try:  # a checkpoint is data, never a path: its tokenizer's file names and fingerprint, before anything is written
        tokenizer.Tokenizer.from_state(ckpt["tokenizer"])
    except ValueError as e:
        raise SystemExit(f"--resume: '{path}' cannot be used: {e}; nothing was written") from None
    return ckpt


def differences(saved: dict, current: dict, ignore=()) -> list[str]:
    """'name: saved -> current' for every key whose value differs (keys of either side)."""
    return [f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in sorted(set(saved) | set(current))
            if k not in ignore and saved.get(k) != current.get(k)]

