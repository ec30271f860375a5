"""Flags: those of every script, those of training, their types (a bad value is an argparse error naming the
flag), and which of them fix a run's result. Every default is the paper's (§4.2) or, where it is silent, the
authors' code (DESIGN.md "Training")."""
import argparse
import dataclasses
import math
import os
from pathlib import Path

import torch

import data
import model
import optim
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


def training_flags(doc: str, recipe) -> argparse.ArgumentParser:
    """data_flags, a flag for each value of the recipe's block (recipe_flags), and the run's bookkeeping."""
    ap = recipe_flags(data_flags(doc), recipe)
    ap.add_argument("--micro-batch-size", type=positive_int, help="videos one forward and backward holds in memory "
                    "at once, in each process (default: its whole share of --batch-size). The batch, and the step, "
                    "stay --batch-size's: the gradients of its micro-batches add up to the batch's (pre-training: "
                    "eq. 4 still over the whole batch, by GradCache; BatchNorm's statistics are the micro-batch's: "
                    "DESIGN.md \"Accumulation\")")
    ap.add_argument("--seed", type=int, default=0, help="data order, augmentation, dropout and initialisation")
    ap.add_argument("--resume", action="store_true",
                    help="continue the interrupted run in --out (with the same flags)")
    ap.add_argument("--stop-after", type=positive_int, help="stop after this many epochs (the schedule still "
                    "spans all of them); continue later with --resume, e.g. under a cluster's time limit")
    ap.add_argument("--standalone", action="store_true", help="the kept weights' folder (<out>/pretrain, "
                    "<out>/finetune) holds the frozen bases' weights too, rather than naming them "
                    "(docs/checkpoints.md)")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model the training loop steps "
                    "(DESIGN.md \"Performance\"); validation, translation and checkpoints use the plain model")
    ap.add_argument("--precision", choices=list(optim.PRECISIONS), help="autocast's dtype: bf16; fp16 with "
                    "dynamic loss scaling, as the authors ran; fp32, none (default: bf16 on a GPU that has it, fp16 "
                    "on one that does not, such as V100 or T4; fp32 on the CPU)")
    ap.add_argument("--checkpointing", action="store_true", help="activation checkpointing: the trainable DINOv2 "
                    "blocks, the temporal blocks and mBART's layers keep only their inputs and recompute the rest "
                    "in backward (less memory, one more forward of them a step; the same gradients)")
    return ap


def value(default, source: str, help: str, type=None, choices=None):
    """One value of a recipe's block: its default, where it comes from (the paper's section, or the authors' file
    and line at commit 73cc504), and what its flag says; `type` parses the flag (default: by the value's type)."""
    return dataclasses.field(default=default, metadata=dict(source=source, help=help, type=type, choices=choices))


PARSERS = {int: lambda: positive_int, float: lambda: positive_float, str: lambda: str}


def recipe_flags(ap: argparse.ArgumentParser, recipe) -> argparse.ArgumentParser:
    """A flag for each value of a recipe's block (a dataclass of cli.value fields): --lambda-psp for lambda_psp,
    its default the block's, its help the block's with the source."""
    for f in dataclasses.fields(recipe):
        m = f.metadata
        default = f.default
        parse = m["type"] or (PARSERS[type(default)]() if default is not None else str)
        ap.add_argument("--" + f.name.replace("_", "-"), type=parse, default=default, choices=m["choices"],
                        help=f"{m['help']} (default {default}: {m['source']})")
    return ap


# The flags above that fix a training run's result: --resume refuses a change of any of them, naming it, and of
# every value of the recipe's block (each script's RESULT_FLAGS). --data also fixes it by the fingerprint of
# the dataset (dataset_fingerprint: its train and dev names and translations). Not among them: where and how
# fast (--device, --workers, --packed-dir, --out), how long this process runs (--stop-after), --compile,
# --checkpointing (the same gradients), --micro-batch-size (the same gradients, BatchNorm's statistics aside:
# DESIGN.md "Accumulation"), --standalone, and --dino/--mbart, whose weights the config checks.
RESULT_FLAGS = ("data", "preset", "max_frames", "frame_stride", "packed", "seed", "precision")


def parse(ap: argparse.ArgumentParser, argv=None, stage: str = None, tiny: dict = None) -> argparse.Namespace:
    """Parse, with --config's flags (harness/flagfile.py: checked for the script of `stage`) as the defaults that
    the command line overrides, and fill the defaults that depend on other flags: `tiny`, the recipe's values for
    the tiny preset, which a --config file overrides in turn."""
    args = ap.parse_args(argv)
    from_file = flagfile.read(args.config, ap, stage) if getattr(args, "config", None) else {}
    ap.set_defaults(**from_file)
    args = ap.parse_args(argv)
    preset = args.preset or default_preset(args.data)
    if tiny and preset == "tiny":
        ap.set_defaults(**(tiny | from_file))
        args = ap.parse_args(argv)
    if getattr(args, "resume", False) and args.overwrite:
        ap.error("--resume continues the run in --out, --overwrite starts it over: pass one of them")
    args.preset = preset
    args.out = args.out or Path("runs") / f"{Path(args.data).name}-{args.preset}"
    if getattr(args, "fasttext", "") is None:
        args.fasttext = default_fasttext(args.preset)
    if hasattr(args, "precision"):  # resolved here, so that the checkpoints record what ran
        args.precision = args.precision or optim.default_precision(args.device)
        if args.precision == "bf16" and torch.device(args.device).type == "cuda" and not optim.native_bf16():
            ap.error("--precision bf16: this GPU has no native bf16; pass --precision fp16 (or fp32)")
    return args


def default_preset(data_flag: str) -> str:
    return "tiny" if data_flag in data.SYNTHETIC else "paper"


def default_fasttext(preset: str) -> str:
    """--fasttext's default: the paper's prototypes (fastText's cc.<lang>.300 vectors, fetched) for a preset with
    real weights, as DINOv2 and mBART are fetched; a skip-gram on the training text for one without (tiny)."""
    return "cc" if model.PRESETS[preset].pretrained else "skipgram"


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
    """--fasttext: cc (fastText's cc.<lang>.300 vectors from the Hub), skipgram (trained on the training text), or
    a whole fastText model file (corpora.fasttext_bin), checked before anything is written."""
    if text in ("cc", "skipgram"):
        return text
    try:
        return fasttext_bin.check(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
