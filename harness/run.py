"""A script's set-up: resolve the data, claim --out, check every video it will read, build the tokenizer (or
take a checkpoint's), fix the config and build the model (--checkpointing applied); then what a recipe reads its
data with: the loaders, beam-search translation of a loader, and fine-tuning's --cache-features."""
import argparse
import dataclasses
import functools
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.utils.checkpoint
from tqdm import tqdm

import data
import model
import optim
import tokenizer
from corpora import check, files
from harness import checkpoint, hf_folder, limits, outdir, parallel


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
        with hf_folder.loading_bases(cfg):  # after the data: it may download
            cfg = limits.widths_from_bases(cfg) if config is None else cfg
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


def setup_finetune(args) -> tuple:
    """Fine-tuning's set-up (setup): from --pretrained (default <out>/pretrain; none: from scratch), read and
    checked as a kept folder (hf_folder.read), whose tokenizer the run takes and whose config must be this run's
    (the pseudo-glosses aside, which stay behind). -> (Setup, the kept pre-training or None)"""
    if args.pretrained == "none":
        return setup(args, stage="finetune"), None
    pretrained = hf_folder.read(args.out / "pretrain" if args.pretrained is None else args.pretrained,
                                "pretrain", "--pretrained")  # a folder or a hub id (hf_folder.resolve)
    ready = setup(args, stage="finetune", tok=pretrained.tok)
    checkpoint.check_matches(ready, pretrained.config["model"], pretrained.tok.fingerprint(), pretrained.path,
                             ignore=("n_glosses",))
    return ready, pretrained


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
    recorded = getattr(args, "recorded_dataset", None)  # --config with a kept folder's record
    if recorded and root is not None and checkpoint.dataset_fingerprint(root) != recorded[1]:
        raise SystemExit(f"--config '{recorded[0]}' was trained on another dataset than the one under '{root}' (its "
                         "train and dev names and translations differ): the record names its dataset, not where it "
                         "lies, so pass the data it was trained on with --data DIR; nothing was written")
    problems = check.check_videos(root, rows, args.packed, args.packed_dir, verified=("dev",))  # what validates
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
    with hf_folder.loading_bases(setup.cfg):
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


def shared_empty(shape: tuple, like: torch.Tensor) -> torch.Tensor:
    """An empty tensor of `like`'s dtype in shared memory: a batch built there in a worker process is not copied
    again by the worker's queue (as torch's default_collate does)."""
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * like.element_size())
    return like.new_empty(0).set_(storage, 0, shape)


def collate(batch) -> dict:
    """data.collate, the frames built in shared memory when in a worker process."""
    return data.collate(batch, shared_empty if torch.utils.data.get_worker_info() is not None else None)


def loader(setup, split: str, augment: bool, ds=None, collate=collate):
    """A DataLoader over one split (or over `ds`): shuffled and augmented to train on (each process its share of
    the --batch-size videos, which is the global batch; its generator reseeded by Ledger.batches), in order
    otherwise."""
    args = setup.args
    if ds is None:
        ds = data.SignVideos(setup.root, split, train=augment, size=setup.cfg.image_size, max_frames=args.max_frames,
                             frame_stride=args.frame_stride, packed=args.packed, packed_dir=args.packed_dir)
    rank, n = parallel.world()
    if args.batch_size % n:
        raise SystemExit(f"--batch-size {args.batch_size} is the global batch: it must divide by {n} processes")
    sampler = None
    if augment and n > 1:
        sampler = torch.utils.data.DistributedSampler(ds, n, rank, shuffle=True, seed=args.seed, drop_last=True)
    # drop_last=False: the last partial batch trains, as in the authors' loader (`dataset/slt_dataset.py` L200 @73cc504)
    return torch.utils.data.DataLoader(
        ds, batch_size=args.batch_size // n, shuffle=augment and sampler is None, sampler=sampler,
        generator=torch.Generator() if augment else None, drop_last=False,
        num_workers=args.workers, collate_fn=collate, pin_memory=setup.device.type == "cuda",
        persistent_workers=args.workers > 0)


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
        with optim.autocast(device, precision):
            ids = net.translate(frames, mask, tok.lang_id, tok.eos_id, tok.pad_id, num_beams, max_new_tokens)
        hyps += [tok.decode(row.tolist()) for row in ids]
        refs += batch["translations"]
    net.train(was_training)
    return hyps, refs


def cached_features(setup: Setup, net) -> dict:
    """Fine-tuning's --cache-features: stage 1 freezes the sign encoder, so its output for each training video is
    computed once and trained on (DESIGN.md "Performance"). -> loader's `ds` and `collate` for stage 1"""
    return dict(ds=cache_features(setup, net), collate=collate_features)


@torch.no_grad()
def cache_features(setup: Setup, net) -> list:
    """The frozen sign encoder's output for every training video, computed once for stage 1 (--cache-features).
    Exact when augmentation is off, as here: stage 1 freezes the sign encoder and runs it in eval mode."""
    net.eval()
    items = []
    for batch in tqdm(loader(setup, "train", augment=False), desc="caching features", leave=False,
                      disable=not parallel.is_main()):
        with optim.autocast(setup.device, setup.args.precision):
            s, mask = net.sign(*data.prepare(batch, setup.device, train=False))
        items += [{"features": s[i, :n].cpu(), "name": name, "translation": text} for i, (n, name, text)
                  in enumerate(zip(mask.sum(1).tolist(), batch["names"], batch["translations"]))]
    return items


def collate_features(items) -> dict:
    """Cached features as a batch: the frame fields of data.collate, holding features [B, T, D] instead."""
    lengths = torch.tensor([len(x["features"]) for x in items])
    return {"frames": torch.nn.utils.rnn.pad_sequence([x["features"] for x in items], batch_first=True),
            "frame_mask": torch.arange(int(lengths.max()))[None] < lengths[:, None],
            "names": [x["name"] for x in items], "translations": [x["translation"] for x in items]}
