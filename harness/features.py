"""Fine-tuning's --cache-features: stage 1 freezes the sign encoder, so its output for each training video can be
computed once and trained on, instead of decoding and encoding every video every epoch (DESIGN.md "Performance")."""
import torch
from tqdm import tqdm

import data
import optim
from harness import parallel, run


def cached(setup: run.Setup, net) -> dict:
    """The DataLoader arguments (run.loader's `ds` and `collate`) of stage 1 on cached features."""
    return dict(ds=cache_features(setup, net), collate=collate_features)


@torch.no_grad()
def cache_features(setup: run.Setup, net) -> list:
    """The frozen sign encoder's output for every training video, computed once for stage 1 (--cache-features).
    Exact when augmentation is off, as here: stage 1 freezes the sign encoder and runs it in eval mode."""
    net.eval()
    items = []
    for batch in tqdm(run.loader(setup, "train", augment=False), desc="caching features", leave=False,
                      disable=not parallel.is_main()):
        with optim.autocast(setup.device):
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
