"""A script's set-up: resolve the data, claim --out, check every video it will read, build the tokenizer (or
take a checkpoint's), fix the config and build the model."""
import argparse
import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

import data
import model
import tokenizer
from corpora import check
from harness import outdir, parallel
from corpora import files


@dataclass
class Setup:
    """What a script works with: its flags, the model config, the data root, the tokenizer and the device."""
    args: argparse.Namespace
    cfg: model.Config
    root: Path  # None for evaluate.py --video, which reads no dataset
    tok: tokenizer.Tokenizer
    device: torch.device
    lang: str = "de"  # the translations' language: pseudo-glosses, mBART's language code, scoring


def setup(args, config: dict = None, stage: str = None, tok: tokenizer.Tokenizer = None, splits=("train", "dev")):
    """Read and check everything that can refuse the run first: the data (data.read_splits: every split of
    `splits` non-empty, names unique), --out (outdir.check_out), the language, every video of `splits`; then
    claim --out for `stage` (lock; refuse to write over a run: outdir.claim), build the tokenizer (or take a
    kept-weights folder's, `tok`) and fix the config (from a folder when given). -> Setup"""
    device = parallel.init_distributed(args.device)
    torch.manual_seed(getattr(args, "seed", 0))
    names = {k: v for k, v in (("dino", args.dino), ("mbart", args.mbart)) if v}
    cfg = dataclasses.replace(model.get_config(args.preset) if config is None else model.Config(**config), **names)
    video = getattr(args, "video", None)
    with parallel.main_process_first():  # one process generates data and tokenizer files, the others read them
        root, rows, lang = read_data(args, splits, tok)
        cfg = model.widths_from_checkpoints(cfg) if config is None else cfg  # after the data: it may download
        resume = getattr(args, "resume", False)
        if stage and parallel.is_main():
            name = (video.stem if video.is_file() else video.name) if video else None
            outdir.claim(args.out, stage, resume, args.overwrite, getattr(args, "split", None), name)
            if not resume:  # a --resume moves the later stages' files once its last state is checked (checkpoint.py)
                outdir.commit(args.out)
        if tok is None:
            train_rows = rows.get("train") or data.read_splits(root, ["train"])["train"]
            sentences = [row["translation"] for row in train_rows]
            kind = "mbart" if cfg.pretrained else "sentencepiece"
            tok = tokenizer.load_or_build_tokenizer(kind, sentences, args.out, mbart_name=cfg.mbart,
                                                    rebuild=parallel.is_main() and not resume, lang=lang,
                                                    write_file=files.atomic_write)
    cfg = dataclasses.replace(cfg, vocab_size=tok.vocab_size)
    return Setup(args, cfg, root, tok, device, lang)


def read_data(args, splits, tok: tokenizer.Tokenizer = None) -> tuple:
    """The checks before anything is written: the dataset root (none for tools/analysis.py --video with a folder's
    tokenizer), its splits (data.read_splits), --out against them, the language, every video of `splits`.
    -> (root, split -> rows, language)"""
    try:
        root = data.resolve_root(args.data) if splits or tok is None else None
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    rows = data.read_splits(root, splits) if root is not None else {}
    outdir.check_out(args.out, root, getattr(args, "video", None))
    lang = language(root, args.lang, tok.lang_code if tok is not None else None)
    problems = check.check_videos(root, rows, args.packed, args.packed_dir)
    if problems:
        raise SystemExit(f"{len(problems)} problem(s) with the videos of {'/'.join(splits)} under '{root}', "
                         "found before training:\n  " + "\n  ".join(problems))
    return root, rows, lang


def language(root, lang_flag: str = None, saved: str = None) -> str:
    """The translations' language: --lang, else the dataset's layout (data.dataset_language); with no dataset
    (tools/analysis.py --video) the checkpoint's. A checkpoint's tokenizer of another language (its language code
    `saved`) is refused."""
    codes = {code: lang for lang, code in tokenizer.LANG_CODES.items()}
    lang = data.dataset_language(root, lang_flag) if root is not None else lang_flag or codes.get(saved, "de")
    if saved is not None and saved != tokenizer.lang_code(lang):
        data_of = f"the data under '{root}' is {lang}" if root is not None else f"--lang {lang} asks for {lang}"
        raise SystemExit(f"the checkpoint's tokenizer is {saved}, {data_of} ({tokenizer.lang_code(lang)}): pass the "
                         "run and the data of one language" + ("" if root is not None else ", or drop --lang"))
    return lang


def build(setup: Setup, kind: str, **kwargs):
    """The pre-training or translation model of the run's preset, on its device (--checkpointing: checkpointed)."""
    build_fn = model.build_pretrain_model if kind == "pretrain" else model.build_translation_model
    net = build_fn(setup.cfg, keep_ids=setup.tok.keep_ids, **kwargs)
    if getattr(setup.args, "checkpointing", False):
        use_checkpointing(net)
    return parallel.sync_batch_norm(net).to(setup.device) if dist.is_initialized() else net.to(setup.device)


def use_checkpointing(net):
    """Activation checkpointing (--checkpointing; DESIGN.md "Performance"): the trainable DINOv2 blocks, the
    temporal blocks and mBART's layers keep only their inputs and recompute the rest in backward, non-reentrant
    (dropout's random state restored: the same gradients). DINOv2's frozen blocks run under no_grad and keep
    nothing anyway; transformers checkpoints a layer only in training mode with gradients on."""
    net.sign.temporal.checkpoint = functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    for hf in (net.sign.visual.dino, net.llm_encoder if isinstance(net, model.PretrainModel) else net.mbart):
        hf.activation_checkpointing_enable({"use_reentrant": False})
    return net
