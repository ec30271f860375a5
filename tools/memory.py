"""Peak memory of one training step, known before the first step and measured without a GPU (issue 31, part V).

    python -m tools.memory --stage pretrain --batch-size 16 --frames 300 --precision bf16 [--checkpointing] \
        [--accumulation 2]
    python -m tools.memory --table                    # docs/performance.md's table (stage x frames x precision ...)
    python -m tools.memory --check                    # the simulation against a real CPU run at a size that fits

The recipes' own forward (pretrain.forward; eq. 6 on data.translation_inputs), backward, clipping and AdamW run on
PyTorch's fake tensors (FakeTensorMode: shapes, dtypes and strides, no data, nothing allocated) at the preset's
real widths (the DINOv2 and mBART architectures from their configs, random weights, no download); PeakBytes
counts the bytes of every live tensor storage and keeps the peak, as torch.cuda.max_memory_allocated does on a GPU.
"""
import argparse
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import warnings
import weakref

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import ShapeEnv
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.weak import WeakIdKeyDictionary

import data
import finetune
import losses
import model
import optim
import pretrain
import pseudogloss
from harness import cli, run

STAGES = ("pretrain", "stage1", "stage2")
CARDS_GB = (24, 40, 80)
HEADROOM = 0.9      # a setting "fits" a card when its peak is at most 90% of it: the CUDA context, cuBLAS/cuDNN
                    # workspaces and the caching allocator's fragmentation take the rest
TEXT_TOKENS = 24    # a PHOENIX14T sentence in mBART's pieces, with </s> and the language code
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class PeakBytes(TorchDispatchMode):
    """The bytes of every live tensor storage an op creates (each storage once, views free, dropped when the
    storage dies), and their peak; `track` adds storages made before (the weights)."""

    def __init__(self, round_to: int = 1):
        super().__init__()
        self.round_to, self.live, self.peak, self.seen = round_to, 0, 0, WeakIdKeyDictionary()

    def track(self, tensors):
        for t in tensors:
            if isinstance(t, torch.Tensor):
                self._add(t.untyped_storage())

    def _add(self, storage):
        if storage in self.seen:
            return
        n = -(-storage.nbytes() // self.round_to) * self.round_to      # the CUDA allocator's 512-byte blocks
        self.seen[storage] = n
        self.live += n
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self._free, n)

    def _free(self, n: int):
        self.live -= n

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        self.track(tree_leaves(out))
        return out


class _Pieces:
    """Stands in for the trimmed mBART tokenizer: every sentence is TEXT_TOKENS - 2 pieces (data.text_batch
    adds </s> and the language code)."""
    pad_id, eos_id, lang_id = 1, 2, 3

    def encode(self, sentence):
        return list(range(4, 4 + TEXT_TOKENS - 2))


@dataclasses.dataclass(frozen=True)
class Setting:
    """What the user sets: the stage (pre-training; fine-tuning stage 1 or 2), the batch (--batch-size, the
    videos of one optimizer step), frames a video, the autocast dtype, activation checkpointing, and accumulation
    (the batch in this many micro-batches of batch / accumulation videos)."""
    stage: str = "pretrain"
    batch_size: int = 16
    frames: int = 115
    precision: str = "bf16"
    checkpointing: bool = False
    accumulation: int = 1


def config(preset: str) -> model.Config:
    """The preset's architecture with random weights; PHOENIX14T's vocabulary and pseudo-gloss counts (§4.2)."""
    paper = preset == "paper"
    return model.get_config(preset, pretrained=False, vocab_size=2172 if paper else 1000,
                            n_glosses=2322 if paper else 100)


def build(stage: str, cfg: model.Config, device, fake: bool = True, checkpointing: bool = False):
    """The stage's model on `device` (fake: empty tensors, which inside FakeTensorMode are fake; else random
    weights), its parameters trainable as the recipe's stage trains them (finetune.train_stage: stage 1 only
    finetune.STAGE1), in optim.train_mode."""
    with torch.device("meta" if fake else device):  # meta: as `python model.py --count`, nothing computed
        net = model.build_pretrain_model(cfg) if stage == "pretrain" else model.build_translation_model(cfg)
    made = {}  # meta -> empty tensors on `device`, each once: tied weights (mBART's embeddings) stay tied
    for module in net.modules() if fake else []:
        for tensors in (module._parameters, module._buffers):
            for name, t in tensors.items():
                if t is not None and id(t) not in made:
                    new = torch.empty(t.shape, dtype=t.dtype, device=device)
                    made[id(t)] = nn.Parameter(new, t.requires_grad) if isinstance(t, nn.Parameter) else new
                if t is not None:
                    tensors[name] = made[id(t)]
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    for n, p in net.named_parameters():
        p.requires_grad_(n in trainable and (stage != "stage1" or n.startswith(finetune.STAGE1)))
    optim.train_mode(net)
    return run.use_checkpointing(net) if checkpointing else net


def make_batch(cfg: model.Config, videos: int, frames: int, device) -> dict:
    """A training batch as data.collate makes it: uint8 frames of the whole 256x256 resize, every frame valid."""
    resize = round(cfg.image_size * 256 / 224)
    mask = torch.ones(videos, frames, dtype=torch.bool, device=device)
    if hasattr(mask, "nonzero_memo"):  # a fake tensor: frames[mask] selects every frame (no data to count them)
        mask.nonzero_memo = videos * frames
    return {"frames": torch.zeros(videos, frames, 3, resize, resize, dtype=torch.uint8, device=device),
            "frame_mask": mask, "names": [f"video{i}" for i in range(videos)], "translations": [""] * videos,
            "source_sizes": torch.tensor([[260, 210]] * videos), "crop": cfg.image_size}


def stand_ins(cfg: model.Config, device, videos: int):
    """The recipe's set-up and pseudo-glosses without a dataset: §4.2's loss weights, the stand-in tokenizer,
    8 pseudo-glosses a sentence."""
    args = argparse.Namespace(**(dataclasses.asdict(pretrain.Recipe()) | dataclasses.asdict(finetune.Recipe())))
    setup = run.Setup(args, cfg, None, _Pieces(), torch.device(device))
    pg = pseudogloss.PseudoGlosses(vocab=[str(i) for i in range(cfg.n_glosses)], prototypes=None,
                                   labels={f"video{i}": list(range(8)) for i in range(videos)}, key={})
    return setup, pg


def loss(net, batch, setup, pg, stage: str):
    """The recipes' own forward (eq. 5, pretrain.forward; or eq. 6 on data.translation_inputs, as
    finetune.accumulated_step): the one place the simulation calls into the recipes."""
    if stage == "pretrain":
        return pretrain.forward(net, batch, setup, pg)[0]
    inputs, labels = data.translation_inputs(batch, setup.tok, setup.device, train=True)
    return losses.translation_loss(net(*inputs), labels, setup.tok.pad_id, setup.args.label_smoothing)


def train_step(net, optimizer, setup, pg, s: Setting):
    """One optimizer step as the recipes' loops take it: zero_grad, forward and backward over s.accumulation
    micro-batches, clipping, AdamW. Pre-training's micro-batches go through the recipe's own GradCache step
    (pretrain.micro_batched_step); fine-tuning's are accumulated as finetune.accumulated_step does, each
    micro-batch's forward and backward in turn (its token count, a data-dependent int, has no fake value)."""
    micro, args = s.batch_size // s.accumulation, setup.args
    batches = [make_batch(setup.cfg, micro, s.frames, setup.device) for _ in range(s.accumulation)]
    optimizer.zero_grad(set_to_none=True)
    if s.stage == "pretrain" and s.accumulation > 1:
        micros = [pretrain.batch_inputs(b, setup, pg, True) for b in batches]
        recipe = argparse.Namespace(**(vars(args) | {"precision": s.precision}))
        pretrain.micro_batched_step(net, micros, recipe, optim.grad_scaler(setup.device, "fp32"))  # no scaling
    else:
        for batch in batches:
            with optim.autocast(setup.device, s.precision):
                value = loss(net, batch, setup, pg, s.stage)
            (value / s.accumulation).backward()
    torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], args.grad_clip)
    optimizer.step()


class Simulator:
    """Training steps on fake tensors at a preset's widths; each stage's model is built once."""

    def __init__(self, preset: str = "paper"):
        self.cfg, self.nets = config(preset), {}
        self.mode = FakeTensorMode(shape_env=ShapeEnv(allow_dynamic_output_shape_ops=True), allow_non_fake_inputs=True)

    def peak(self, s: Setting) -> dict:
        """Peak bytes of a training step in the loop's steady state: the previous step's gradients and AdamW's
        states there from the start (the loops free the gradients after the forward pass); and the weights'
        bytes (parameters and buffers)."""
        with self.mode, warnings_off():
            if (s.stage, s.checkpointing) not in self.nets:
                self.nets[s.stage, s.checkpointing] = build(s.stage, self.cfg, "cpu", checkpointing=s.checkpointing)
            net = self.nets[s.stage, s.checkpointing]
            setup, pg = stand_ins(self.cfg, "cpu", s.batch_size // s.accumulation)
            optimizer = torch.optim.AdamW(optim.param_groups(net, 1e-3), lr=1e-4)
            tracker = PeakBytes(round_to=512)
            tracker.track([*net.parameters(), *net.buffers()])
            weights = tracker.live
            with tracker:
                previous_step(net, optimizer)
                train_step(net, optimizer, setup, pg, s)
        return {"peak": tracker.peak, "weights": weights}


def previous_step(net, optimizer):
    """What a step leaves behind: a gradient for every trainable parameter and AdamW's two states for each."""
    for p in net.parameters():
        if p.requires_grad:
            p.grad = torch.zeros_like(p)
    optimizer.step()


@contextlib.contextmanager
def warnings_off():
    """Fake tensors make transformers and torch warn about what has no data (e.g. padding checks)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def rss_run(s: Setting, preset: str) -> dict:
    """The same step for real, on the CPU, in this process (run by measure_rss in a fresh one): the resident
    memory after building and a warm-up (idle), then the high-water mark of the step (VmHWM, what ru_maxrss
    reads, reset before the step by /proc/self/clear_refs) above it."""
    torch.manual_seed(0)
    cfg = config(preset)
    net = build(s.stage, cfg, "cpu", fake=False, checkpointing=s.checkpointing)
    setup, pg = stand_ins(cfg, "cpu", s.batch_size // s.accumulation)
    warm = dataclasses.replace(s, batch_size=1, frames=2, accumulation=1)   # kernels and threads made once
    with optim.autocast("cpu", s.precision):
        loss(net, make_batch(cfg, 1, 2, "cpu"), setup, pg, warm.stage).backward()
    net.zero_grad(set_to_none=True)
    optimizer = torch.optim.AdamW(optim.param_groups(net, 1e-3), lr=1e-4)
    idle = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                                                       # resets the peak to the current RSS
    previous_step(net, optimizer)
    train_step(net, optimizer, setup, pg, s)
    weights = sum(t.untyped_storage().nbytes() for t in {*net.parameters(), *net.buffers()})
    return {"idle": idle * 1024, "peak": _status_kib("VmHWM") * 1024, "weights": weights}


def measure_rss(s: Setting, preset: str) -> dict:
    """rss_run in a fresh process; glibc's mmap threshold fixed at 64 KiB so that freed tensors go back to the
    system (its default threshold grows and then keeps freed memory, which RSS would count)."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
    cmd = [sys.executable, "-m", "tools.memory", "--rss-run", json.dumps(dataclasses.asdict(s)), "--preset", preset]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"the real CPU run failed ({' '.join(cmd)}):\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def check(s: Setting, preset: str) -> dict:
    """The simulated step against the real one on the CPU (fp32 or the CPU's autocast): bytes above the weights
    in the simulation, resident bytes above the idle level in the real run."""
    simulated = Simulator(preset).peak(s)
    real = measure_rss(s, preset)
    sim, rss = simulated["peak"] - simulated["weights"], real["peak"] - real["idle"]
    return {"simulated": sim, "real": rss, "ratio": sim / rss, "weights": simulated["weights"],
            "real_weights": real["weights"]}


def gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def fits(peak: int) -> str:
    """The cards (GB as sold: 24 GB is 24 GiB of memory, as torch reports it) whose HEADROOM the peak fits."""
    cards = [f"{gb} GB" for gb in CARDS_GB if peak <= HEADROOM * gb * 2**30]
    return ", ".join(cards) if cards else "none of 24/40/80 GB"


def describe(s: Setting) -> str:
    micro = f" ({s.accumulation} micro-batches of {s.batch_size // s.accumulation})" if s.accumulation > 1 else ""
    return (f"{s.stage}, batch {s.batch_size}{micro}, {s.frames} frames a video, {s.precision}"
            + (", activation checkpointing" if s.checkpointing else ""))


def flags():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stage", choices=STAGES, default="pretrain",
                    help="pre-training, or fine-tuning stage 1 (mapper and decoder LoRA) or 2 (everything)")
    ap.add_argument("--batch-size", type=cli.positive_int, default=16, help="videos a step (§4.2: 16)")
    ap.add_argument("--frames", type=cli.positive_int, default=115, help="frames a video (PHOENIX14T: 115 on "
                    "average; --max-frames caps them at 300)")
    ap.add_argument("--precision", choices=sorted(optim.PRECISIONS), default="bf16", help="autocast dtype")
    ap.add_argument("--checkpointing", action="store_true", help="activation checkpointing")
    ap.add_argument("--accumulation", type=cli.positive_int, default=1, help="the batch in this many micro-batches "
                    "of batch-size / accumulation videos (one optimizer step)")
    ap.add_argument("--preset", choices=sorted(model.PRESETS), default="paper", help="model widths")
    ap.add_argument("--table", action="store_true", help="the table of docs/performance.md (minutes)")
    ap.add_argument("--check", action="store_true", help="the simulation against a real run on this CPU "
                    "at these settings (pick a size that fits: e.g. --batch-size 2 --frames 16 --precision fp32)")
    ap.add_argument("--rss-run", help=argparse.SUPPRESS)
    return ap


def main(argv=None):
    args = flags().parse_args(argv)
    if args.rss_run:  # the child of measure_rss
        print(json.dumps(rss_run(Setting(**json.loads(args.rss_run)), args.preset)))
        return
    if args.batch_size % args.accumulation:
        raise SystemExit(f"--batch-size {args.batch_size} does not split into --accumulation {args.accumulation} "
                         "equal micro-batches")
    s = Setting(args.stage, args.batch_size, args.frames, args.precision, args.checkpointing, args.accumulation)
    if args.table:
        return print_table(args.preset, args.batch_size)
    if args.check:
        r = check(s, args.preset)
        print(f"{describe(s)}, {args.preset} preset, above the weights: simulated {gib(r['simulated'])}, "
              f"real CPU run {gib(r['real'])} (peak resident memory above idle); simulated / real {r['ratio']:.3f}")
        return
    print_fits(s, args.preset)


def print_fits(s: Setting, preset: str):
    """The user's setting, then the same with and without checkpointing at accumulation 1, 2, 4: which fit."""
    sim = Simulator(preset)
    r = sim.peak(s)
    print(f"{describe(s)}, {preset} preset: peak {gib(r['peak'])} (weights {gib(r['weights'])}); "
          f"fits: {fits(r['peak'])} (at most {HEADROOM:.0%} of the card)")
    print("the same stage, batch, frames and precision:")
    for ckpt in (False, True):
        for accumulation in (a for a in (1, 2, 4) if s.batch_size % a == 0):
            other = dataclasses.replace(s, checkpointing=ckpt, accumulation=accumulation)
            peak = r["peak"] if other == s else sim.peak(other)["peak"]
            print(f"  checkpointing {'on ' if ckpt else 'off'} accumulation {accumulation}: {gib(peak):>9}  "
                  f"fits {fits(peak)}")


def print_table(preset: str, batch_size: int, stages=STAGES, header: bool = True):
    """Markdown: peak GiB by stage, frames and precision (rows) x checkpointing and accumulation (columns)."""
    sim = Simulator(preset)
    columns = [(c, a) for c in (False, True) for a in (1, 2, 4)]
    if header:
        print("| stage | frames | precision | " + " | ".join(f"{'ckpt' if c else 'plain'} acc {a}" for c, a in columns)
              + " |\n|" + "---|" * (3 + len(columns)), flush=True)
    for stage in stages:
        for frames in (115, 200, 300):
            for precision in ("bf16", "fp32"):  # fp16's tensors are bf16's size: its row is bf16's
                peaks = [sim.peak(Setting(stage, batch_size, frames, precision, c, a))["peak"] for c, a in columns]
                name = "bf16, fp16" if precision == "bf16" else precision
                print(f"| {stage} | {frames} | {name} | " + " | ".join(f"{p / 2**30:.1f}" for p in peaks)
                      + " |", flush=True)


if __name__ == "__main__":
    main()
