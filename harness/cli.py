"""Flags: those of every script, those of training, their types (a bad value is an argparse error naming the
flag), and which of them fix a run's result. Every default is the paper's (§4.2) or, where it is silent, the
authors' code (DESIGN.md "Training")."""
import argparse
import math
import os
from pathlib import Path

import torch

import data
import model
import tokenizer
from corpora import fasttext_bin
from harness import flagfile


def data_flags(doc: str) -> argparse.ArgumentParser:
    """The flags of every script: which data, which run, which device, how frames are read."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="phoenix14t", help="phoenix14t, how2sign, csl-daily ($PHOENIX14T_ROOT, "
                    "$HOW2SIGN_ROOT, $CSL_DAILY_ROOT or data/<name>), synthetic, synthetic-hard, synthetic-en, "
                    "synthetic-zh (generated once under data/<name>), or a folder in one of these layouts or the "
                    "custom one (docs/datasets.md)")
    ap.add_argument("--lang", choices=sorted(tokenizer.LANG_CODES), help="the translations' language (default: the "
                    "dataset's: phoenix14t de, how2sign en, csl-daily zh; required for the custom layout)")
    ap.add_argument("--preset", choices=sorted(model.PRESETS), help="model size (default: paper; tiny for synthetic)")
    ap.add_argument("--out", type=Path, help="the run's folder (default: runs/<data>-<preset>)")
    ap.add_argument("--overwrite", action="store_true", help="start over in an --out that holds this script's "
                    "files: they (and those of the later stages) are moved to <out>/replaced-<time>/")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    ap.add_argument("--batch-size", type=positive_int, default=16,
                    help="videos per step, over all processes (§4.2)")
    ap.add_argument("--workers", type=non_negative_int, default=min(8, os.cpu_count() or 1),
                    help="data loading processes")
    ap.add_argument("--max-frames", type=positive_int, default=300,
                    help="longer videos are subsampled evenly to this")
    ap.add_argument("--frame-stride", type=positive_int, default=1, help="read every n-th frame")
    ap.add_argument("--packed", action="store_true", help="read frames from the JPEG packs that "
                    "`python -m tools.prepare --pack --data ...` writes once (much faster than the PNGs)")
    ap.add_argument("--packed-dir", help="where the packs are (default: <root>/packed)")
    ap.add_argument("--dino", help="DINOv2 hub name or local folder (paper preset; default facebook/dinov2-small)")
    ap.add_argument("--mbart", help="mBART hub name or local folder (paper preset; default facebook/mbart-large-cc25)")
    ap.add_argument("--config", help="the flags from a file: a kept folder (<out>/pretrain, <out>/finetune) or its "
                    "training.json, to repeat that run, or a YAML or JSON file of flags; flags given here override it")
    return ap


def training_flags(doc: str) -> argparse.ArgumentParser:
    """data_flags and the flags of the optimiser, its schedule and the run's bookkeeping."""
    ap = data_flags(doc)
    ap.add_argument("--seed", type=int, default=0, help="data order, augmentation, dropout and initialisation")
    ap.add_argument("--lr", type=positive_float, default=3e-4,
                    help="peak learning rate of the one-cycle schedule (§4.2)")
    ap.add_argument("--weight-decay", type=non_negative_float, default=1e-3, help="AdamW weight decay (§4.2)")
    ap.add_argument("--warmup-epochs", type=non_negative_int, default=5,
                    help="epochs of warm-up before the cosine decay (§4.2)")
    ap.add_argument("--resume", action="store_true",
                    help="continue the interrupted run in --out (with the same flags)")
    ap.add_argument("--stop-after", type=positive_int, help="stop after this many epochs (the schedule still "
                    "spans all of them); continue later with --resume, e.g. under a cluster's time limit")
    ap.add_argument("--standalone", action="store_true", help="the kept weights' folder (<out>/pretrain, "
                    "<out>/finetune) holds the frozen bases' weights too, rather than naming them "
                    "(docs/checkpoints.md)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model the training loop steps "
                    "(DESIGN.md \"Performance\"); validation, translation and checkpoints use the plain model")
    return ap


# The flags above that fix a training run's result: --resume refuses a change of any of them, naming it (each
# script adds its own: pretrain.RESULT_FLAGS, finetune.RESULT_FLAGS). --data also fixes it by the fingerprint of
# the dataset (dataset_fingerprint: its train and dev names and translations). Not among them: where and how
# fast (--device, --workers, --packed-dir, --out), how long this process runs (--stop-after), --compile,
# --standalone, and --dino/--mbart, whose weights the config checks.
RESULT_FLAGS = ("data", "preset", "batch_size", "max_frames", "frame_stride", "packed", "seed", "lr", "weight_decay",
                "warmup_epochs")


def parse(ap: argparse.ArgumentParser, argv=None, stage: str = None) -> argparse.Namespace:
    """Parse, with --config's flags (harness/flagfile.py: checked for the script of `stage`) as the defaults that
    the command line overrides, and fill the defaults that depend on other flags."""
    args = ap.parse_args(argv)
    if args.config:
        ap.set_defaults(**flagfile.read(args.config, ap, stage))
        args = ap.parse_args(argv)
    if getattr(args, "resume", False) and args.overwrite:
        ap.error("--resume continues the run in --out, --overwrite starts it over: pass one of them")
    args.preset = args.preset or ("tiny" if args.data in data.SYNTHETIC else "paper")
    args.out = args.out or Path("runs") / f"{Path(args.data).name}-{args.preset}"
    return args


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


def fasttext_file(text: str) -> str:
    """--fasttext: a whole fastText model file (corpora.fasttext_bin), checked before anything is written."""
    try:
        return fasttext_bin.check(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
