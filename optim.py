"""What the training loops share of §4.2's optimisation (DESIGN.md "Training"): AdamW's parameter groups, the
one-cycle schedule, the precision steps run in, which modules run in training mode, and what a second forward pass
of the same micro-batch (pretrain.micro_batched_step) must replay or leave alone."""
import contextlib

import torch


def param_groups(net, weight_decay: float):
    """AdamW groups: decay on weight matrices only, none on biases, norms, layer scales and temperatures."""
    params = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    return [{"params": [p for n, p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for n, p in params if p.ndim < 2], "weight_decay": 0.0}]


def one_cycle(optimizer, warmup_steps: int, total_steps: int, start_div: float, end_div: float, betas: tuple):
    """§4.2's one-cycle schedule, as torch's OneCycleLR (the authors' choice): warm-up from lr / start_div to the
    peak lr, cosine decay to lr / (start_div * end_div), Adam's beta1 cycled from betas[1] down to betas[0] and
    back. OneCycleLR divides by both phases' lengths, so the warm-up is kept between 1.5 steps and all but half a
    step (short test runs)."""
    warmup = min(max(warmup_steps, 1.5), total_steps - 0.5)
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                                               total_steps=max(total_steps, 1), pct_start=warmup / max(total_steps, 1),
                                               anneal_strategy="cos", div_factor=start_div, final_div_factor=end_div,
                                               base_momentum=betas[0], max_momentum=betas[1])


def adamw_one_cycle(net, args, steps_per_epoch: int, epochs: int, device) -> tuple:
    """§4.2's optimiser as a recipe's block sets it (`args`: lr, weight_decay, warmup_epochs, start_div, end_div,
    beta1_low, beta1_high, beta2, precision): AdamW on param_groups under one_cycle, stepped every batch, and the
    loss scaler of the precision (grad_scaler). -> (optimizer, scheduler, scaler)"""
    optimizer = torch.optim.AdamW(param_groups(net, args.weight_decay), lr=args.lr, betas=(args.beta1_high, args.beta2))
    scheduler = one_cycle(optimizer, args.warmup_epochs * steps_per_epoch, epochs * steps_per_epoch, args.start_div,
                          args.end_div, (args.beta1_low, args.beta1_high))
    return optimizer, scheduler, grad_scaler(device, args.precision)


def train_mode(net):
    """Training mode for what trains; every module whose parameters are all frozen runs as at inference
    (fixed BatchNorm statistics, no dropout), e.g. fine-tuning stage 1's mBART encoder beside the decoder."""
    net.train()
    for m in net.modules():
        params = list(m.parameters())
        if params and not any(p.requires_grad for p in params):
            m.eval()


PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}  # fp32: no autocast


def default_precision(device) -> str:
    """--precision's default on a device: bf16 on a GPU that has it natively (Ampere and later), fp16 on one that
    does not (V100, T4, RTX 20xx; bf16 emulated there is slow), fp32 on the CPU."""
    if torch.device(device).type != "cuda":
        return "fp32"
    return "bf16" if native_bf16() else "fp16"


def native_bf16() -> bool:
    return torch.cuda.is_bf16_supported(including_emulation=False)


def autocast(device, precision: str = None):
    """Autocast in --precision (bf16, fp16; fp32: none); by default the device's (default_precision)."""
    precision = precision or default_precision(device)
    return torch.autocast(device_type=torch.device(device).type, dtype=PRECISIONS[precision],
                          enabled=precision != "fp32")


def grad_scaler(device, precision: str) -> torch.amp.GradScaler:
    """fp16's dynamic loss scaling, as in the authors' fp16 runs: the loss scaled up before backward, the gradients
    unscaled before clipping, a step whose gradients overflowed skipped and the scale halved. A pass-through for
    bf16 and fp32, whose range needs none. Its scale is not kept by --resume: it re-calibrates in a few steps."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def rng_state(device) -> tuple:
    """What dropout and DropPath draw from: the CPU's random state and, on CUDA, the GPU's (the states GradCache's
    RandContext and torch.utils.checkpoint save before a forward pass they replay)."""
    cuda = torch.device(device).type == "cuda"
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if cuda else None


def set_rng_state(state: tuple, device):
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


@contextlib.contextmanager
def running_statistics_kept(net):
    """BatchNorm's running statistics as they were before the block: a forward pass that is replayed later
    (GradCache's first pass) must not count its batch twice."""
    buffers = [b for m in net.modules() if getattr(m, "running_mean", None) is not None
               for b in (m.running_mean, m.running_var, m.num_batches_tracked)]
    saved = [b.clone() for b in buffers]
    yield
    with torch.no_grad():
        for b, kept in zip(buffers, saved):
            b.copy_(kept)
