"""Table 3 part by part: the trainable and total parameters of each part of both models, counted on the meta
device (no weights, no download); `python model.py --count` prints the four totals.

    python -m tools.table3 [--preset tiny]
"""
import argparse

import torch.nn as nn

import model

# The parts of Table 3, by parameter name: the first matching prefix names the part; LoRA weights apart.
PARTS = [("sign.visual.dino.", "image encoder"), ("sign.visual.", "frame head"),
         ("sign.temporal.blocks.", "temporal encoder blocks"), ("sign.temporal.out_proj.", "output projection"),
         ("gloss_head.", "pseudo-gloss head"), ("prototypes", "prototypes"), ("cls", "CLS token"),
         ("logit_scale", "contrastive logit scale"), ("mapper.", "mapper"),
         ("llm_encoder.embed_tokens.", "LLM embeddings"), ("mbart.model.shared.", "LLM embeddings"),
         ("llm_encoder.", "LLM encoder"), ("mbart.model.encoder.", "LLM encoder"),
         ("mbart.model.decoder.", "decoder"), ("text_encoder.", "text encoder (frozen copy)")]


def parts(model: nn.Module) -> dict:
    """Part -> [trainable, total], in PARTS' order (DESIGN.md "Architecture")."""
    rows = {label + lora: [0, 0] for _, label in PARTS for lora in ("", " LoRA")}
    for name, p in model.named_parameters():                 # tied weights once
        part = next(label for prefix, label in PARTS if name.startswith(prefix))
        rows[part + (" LoRA" if "lora_" in name else "")][0] += p.numel() * p.requires_grad
        rows[part + (" LoRA" if "lora_" in name else "")][1] += p.numel()
    return {k: v for k, v in rows.items() if v[1]}



def print_parts(preset: str):
    """Each part's row of both models, then the totals (model.print_counts)."""
    for title, net in zip(("pre-training", "fine-tuning"), model.build_counted(preset)):
        print(f"{title:<30}{'trainable':>14}{'total':>14}")
        for name, (t, n) in parts(net).items():
            print(f"  {name:<28}{t:>14,}{n:>14,}")
    model.print_counts(preset)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="paper", choices=sorted(model.PRESETS), help="model size")
    print_parts(ap.parse_args().preset)
