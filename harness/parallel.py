"""Data-parallel training, only under `torchrun --nproc_per_node N` (one process needs none of it): process
group, the gradients' averaging, the frame head's BatchNorm synced over processes, and who writes."""
import contextlib
import os

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch.nn.parallel import DistributedDataParallel


def for_training(net, compile: bool = False):
    """The model the loop steps: `net` data-parallel under torchrun, torch.compile'd with --compile. Checkpoints,
    validation and translation use `net` itself, so their keys carry no `_orig_mod.`/`module.` prefix."""
    stepped = data_parallel(net)
    return torch.compile(stepped) if compile else stepped


def no_sync(net, skip: bool):
    """DDP's no_sync when `skip`: that backward adds to the gradients without averaging them over processes;
    accumulation averages once, in its last micro-batch's backward (DDP's own advice)."""
    return net.no_sync() if skip and hasattr(net, "no_sync") else contextlib.nullcontext()


def init_distributed(device: str) -> torch.device:
    """Data-parallel training under torchrun (NCCL on GPU, gloo on CPU); a plain device otherwise."""
    if int(os.environ.get("WORLD_SIZE", 1)) == 1:
        return torch.device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(device)


def data_parallel(net):
    """Gradients averaged over processes; the pre-training text embedding may go unused in a step."""
    return DistributedDataParallel(net, find_unused_parameters=True) if dist.is_initialized() else net


class SyncedBatchNorm(torch.nn.BatchNorm1d):
    """The frame head's BatchNorm with mean and variance over the valid frames of every process, as one process
    would compute them on the global batch (any device, unlike nn.SyncBatchNorm); differentiable."""

    def forward(self, x):
        # x [N, C], this process's valid frames
        if not self.training:
            return super().forward(x)
        x = x.float()
        stats = dist_nn.all_reduce(torch.cat([x.sum(0), (x * x).sum(0), x.new_full((1,), len(x))]))  # summed
        C, n = x.shape[1], stats[-1]
        mean = stats[:C] / n
        var = stats[C:-1] / n - mean ** 2
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1), self.momentum)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


def sync_batch_norm(net):
    """Every BatchNorm1d of `net` replaced by a SyncedBatchNorm holding the same state, as
    nn.SyncBatchNorm.convert_sync_batchnorm does."""
    for parent in list(net.modules()):
        for name, bn in list(parent.named_children()):
            if type(bn) is torch.nn.BatchNorm1d:
                synced = SyncedBatchNorm(bn.num_features, bn.eps, bn.momentum, device=bn.weight.device)
                synced.load_state_dict(bn.state_dict())
                setattr(parent, name, synced)
    return net


def world() -> tuple:
    """(rank, number of processes)."""
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def is_main() -> bool:
    """Only the first process writes checkpoints, logs and files."""
    return world()[0] == 0


def log(*args):
    """print, in the first process only."""
    if is_main():
        print(*args, flush=True)


@contextlib.contextmanager
def main_process_first():
    """Run a block in the first process, then in the others (which then find its files)."""
    if not is_main():
        dist.barrier()
    yield
    if is_main() and dist.is_initialized():
        dist.barrier()

