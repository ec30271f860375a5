"""The one object a training loop talks to for the run's bookkeeping (DESIGN.md "Runs and checkpoints"): where
the stage resumes, the seeded batches of each epoch under a progress bar, the loss terms of each step, when to
validate, and, after each epoch, the best weights kept and the last state written. It moves no file: the recipes'
`main` moves the later stages' files aside (outdir.commit) once every ledger has read and checked its state."""
import dataclasses
import math

import torch

from harness import checkpoint, hf_folder, logs, parallel

# the kept weights' metric, by kind, and which way is better
METRIC = {"pretrain": ("validation loss (eq. 5)", "loss", "lower"), "finetune": ("dev BLEU-4", "bleu4", "higher")}


class Ledger:
    """One training stage's bookkeeping. `kind` ('pretrain' or 'finetune') is what the weights are: the folder
    <out>/<kind> holds the best of them (harness/hf_folder.py), what the next stage reads; <out>/<name>.last.pt
    the full state after the last epoch, what --resume continues. Both hold the parameters named in `names`
    (default: those that train) and buffers; the folder its config, tokenizer, the values of the flags
    `flag_names` (checkpoint.result_flags) and `extra` (the pseudo-gloss vocabulary, or the lineage). With
    --resume the last state is read and checked here, before the stage's long work. Only the first process
    writes."""

    def __init__(self, setup, kind: str, name: str, flag_names: tuple, epochs: int, val_every: int = 1,
                 names: set = None, extra: dict = None):
        self.setup, self.kind, self.name, self.names, self.extra = setup, kind, name, names, extra or {}
        self.epochs_total, self.val_every = epochs, val_every
        self.metric, self.key, better = METRIC[kind]
        self.lower = better == "lower"
        self.best = math.inf if self.lower else -math.inf
        self.best_path, self.last_path = setup.args.out / kind, setup.args.out / f"{name}.last.pt"
        self.about = dict(kind=kind, config=dataclasses.asdict(setup.cfg), tokenizer=setup.tok.state(),
                          flags=checkpoint.result_flags(setup, flag_names), lang=setup.lang)
        self.state = None
        if setup.args.resume and self.last_path.exists():
            self.state = checkpoint.load_checkpoint(self.last_path, kind)
            checkpoint.check_matches(setup, self.state["config"], self.state["tokenizer"]["fingerprint"],
                                     self.last_path, flags=self.about["flags"], saved_flags=self.state["flags"])
        self.progress = None

    def resume(self, net, optimizer, scheduler, best: float = None) -> range:
        """The epochs (0-based) this process runs: from the last state's, with its weights, optimiser and schedule
        loaded (--resume), at most --stop-after of them. `best`: the metric to beat so far (fine-tuning stage 2
        starts from stage 1's best dev BLEU-4)."""
        args, start, state = self.setup.args, 0, self.state
        self.best = self.best if best is None else best
        if state is not None:
            checkpoint.load_weights(net, state["model"], self.last_path)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            self.best, start, self.state = state["best"], state["epoch"], None
            parallel.log(f"{self.name}: resumed from {self.last_path} after epoch {start}")
        elif args.resume:
            parallel.log(f"{self.name}: nothing to resume in {args.out}, starting from the first epoch")
        self.progress = logs.Progress(self.setup, self.name, self.epochs_total)
        stop = min(self.epochs_total, start + args.stop_after) if args.stop_after else self.epochs_total
        return range(start, stop)

    def batches(self, loader, epoch: int):
        """The batches of `epoch` under a progress bar, their order, augmentation and dropout seeded by the epoch
        (so --resume continues exactly), each process its share of the shuffled videos."""
        torch.manual_seed(self.setup.args.seed + epoch)
        loader.generator.manual_seed(self.setup.args.seed + epoch)
        if isinstance(loader.sampler, torch.utils.data.DistributedSampler):
            loader.sampler.set_epoch(epoch)
        return self.progress.batches(loader, epoch)

    def step(self, **terms):
        """One step's loss terms (tensors): summed for the epoch's line, checked to be finite."""
        self.progress.step(**terms)

    def validates(self, epoch: int) -> bool:
        """Whether the loop validates after `epoch` (0-based): every val_every epochs, and always after the last."""
        return (epoch + 1) % self.val_every == 0 or epoch + 1 == self.epochs_total

    def end_epoch(self, epoch: int, val: dict, net, optimizer, scheduler) -> bool:
        """After `epoch` (0-based): the validation's values (None when it did not validate) checked and logged,
        the weights kept as <out>/<kind> when they are the best so far, and the full state written. -> improved"""
        val = self.progress.validated(val or {})
        improved = bool(val) and (val[self.key] < self.best if self.lower else val[self.key] > self.best)
        if improved:
            self.best = val[self.key]
            self.save_best(net, epoch)
        self.save_last(net, optimizer, scheduler, epoch)
        self.progress.end_epoch(scheduler.get_last_lr()[0], improved)
        return improved

    def close(self) -> float:
        """The best metric of the stage, after its logs are flushed."""
        if self.progress is not None:
            self.progress.close()
        return self.best

    def trained(self, net) -> set:
        return self.names or {n for n, p in net.named_parameters() if p.requires_grad}

    def save_best(self, net, epoch: int):
        if parallel.is_main():
            about = dict(kind=self.kind, epoch=epoch + 1, metric={"name": self.metric, "value": self.best},
                         flags=self.about["flags"], dataset=checkpoint.dataset_of(self.setup), **self.extra)
            hf_folder.save(self.best_path, net, self.setup, about, self.trained(net),
                           standalone=getattr(self.setup.args, "standalone", False))

    def save_last(self, net, optimizer, scheduler, epoch: int):
        if parallel.is_main():
            checkpoint.save_checkpoint(self.last_path, **self.about, role="last",
                                       model=checkpoint.trainable_state(net, self.names),
                                       optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                       epoch=epoch + 1, best=self.best)
