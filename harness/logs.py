"""What a training loop shows and records: a progress bar, the loss terms' sums, the stop at a non-finite loss,
TensorBoard scalars and one printed line per epoch."""
import math
import time

import torch
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from harness import parallel


class Progress:
    """What the loop shows and records: a progress bar over each epoch's batches; the loss terms of each step
    summed on the device and checked to be finite every 10 steps (no GPU sync per step), so that a non-finite
    loss stops the run before any checkpoint of those weights; TensorBoard scalars <name>/train/* and
    <name>/val/* and one printed line per epoch (first process only; on CUDA with the epoch's peak
    memory, torch.cuda.max_memory_allocated)."""

    def __init__(self, setup, name: str, epochs: int):
        self.name, self.epochs = name, epochs
        self.cuda = torch.device(setup.device).type == "cuda"
        self.writer = SummaryWriter(setup.args.out) if parallel.is_main() else None

    def batches(self, loader, epoch: int):
        """The batches of one epoch (0-based), under a progress bar."""
        self.epoch, self.sums, self.finite, self.val = epoch, {}, [], {}
        self.t0, self.n = time.time(), len(loader)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        self.bar = tqdm(loader, desc=f"{self.name} {epoch + 1}/{self.epochs}", leave=False, dynamic_ncols=True,
                        disable=not parallel.is_main())
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
        if not parallel.is_main():
            return
        logs = {f"train/{k}": float(v) / self.n for k, v in self.sums.items()}
        logs |= {f"val/{k}": v for k, v in self.val.items()}
        for k, v in logs.items():
            self.writer.add_scalar(f"{self.name}/{k}", v, self.epoch + 1)
        print(f"{self.name} epoch {self.epoch + 1}/{self.epochs} "
              + " ".join(f"{k} {v:.4f}" for k, v in logs.items())
              + f" lr {lr:.2e} {time.time() - self.t0:.0f}s"
              + (f" peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB" if self.cuda else "")
              + (" *best*" if improved else ""), flush=True)

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

