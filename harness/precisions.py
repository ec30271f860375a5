"""--precision's names, their autocast dtypes and the default on a device (DESIGN.md "Training"): what the
hardware has, so that a GPU without bf16 still trains, in fp16 with loss scaling (train.grad_scaler)."""
import torch

PRECISIONS = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}  # fp32: no autocast


def default(device) -> str:
    """bf16 on a GPU that has it natively (Ampere and later), fp16 on one that does not (V100, T4, RTX 20xx), fp32
    on the CPU."""
    if torch.device(device).type != "cuda":
        return "fp32"
    return "bf16" if native_bf16() else "fp16"


def native_bf16() -> bool:
    return torch.cuda.is_bf16_supported(including_emulation=False)  # bf16 emulated on a V100 is slow
