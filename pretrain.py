"""Pre-training (paper §3.2): align the segments with pseudo-glosses (eqs. 1-3) and the video with its sentence
(eq. 4), L_pre-train = L_align + lambda L_psp (eq. 5); keep the weights with the lowest validation loss.

    python pretrain.py --data phoenix14t                 # paper preset, one GPU; writes runs/phoenix14t-paper/pretrain.pt
    python pretrain.py --data synthetic                  # tiny preset, CPU minutes

The machinery (flags, loaders, optimiser, checkpoints, the loop) is train.py's; this file is the method.
"""
import dataclasses

import torch

import data
import losses
import model
import pseudogloss
import runs
import train


def pretrain_step(run: train.Run, pg: dict, lambda_psp: float, psp_variant: str, lambda_align: float = 1.0):
    """One batch of eq. 5: the video through the sign and LLM encoders, its sentence through the frozen text
    encoder, both losses against the sentence's pseudo-glosses H and the other videos of the batch."""

    def step(net, batch):
        (text_ids, text_mask), _, _ = train.text_batch(run.tok, batch["translations"], run.device)
        out = net(*data.prepare(batch, run.device, train=net.training), text_ids, text_mask)
        labels = pseudogloss.multi_hot(batch["names"], pg).to(run.device)         # H [B, U]
        loss, align, psp = losses.pretrain_loss(out, labels, lambda_psp, psp_variant, lambda_align)
        return loss, {"loss": loss, "align": align, "psp": psp}
    return step


def validator(run: train.Run, step):
    """The validation loss: eq. 5 and its two terms, averaged over the dev videos."""
    dev = train.loader(run, "dev", train=False)

    @torch.no_grad()
    def validate(net):
        net.eval()
        sums, n = {}, 0
        for batch in dev:
            with train.autocast(run.device):
                _, logs = step(net, batch)
            for k, v in logs.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(batch["names"])
            n += len(batch["names"])
        logs = {k: v / n for k, v in sums.items()}
        return logs["loss"], logs
    return validate


def main(argv=None):
    ap = train.training_flags(__doc__)
    ap.add_argument("--epochs", type=runs.positive_int, default=100, help="pre-training epochs (§4.2)")
    ap.add_argument("--lambda-psp", type=runs.non_negative_float, default=1.0, help="lambda of eq. 5 (0: no pseudo-gloss loss)")
    ap.add_argument("--psp-loss", choices=["paper", "authors"], default="paper", help="eq. 3's BCE on E-hat over "
                    "the U pseudo-glosses (paper), or the authors' code: BCE-with-logits on E-hat over U + 1 columns")
    ap.add_argument("--lambda-align", type=runs.non_negative_float, default=1.0, help="weight of eq. 4's L_align in "
                    "eq. 5 (the paper: 1; 0: pseudo-glosses only)")
    ap.add_argument("--fasttext", help="cc.de.300.bin (cc.en/cc.zh for the other languages) for the prototypes "
                    "(default: skip-gram on the training text)")
    args = train.parse(ap, argv)
    run = train.setup(args, stage="pretrain")
    with train.main_process_first():
        pg = pseudogloss.build_pseudoglosses(run.root, fasttext_path=args.fasttext, lang=run.lang)
    if not pg["vocab"]:
        raise SystemExit(f"no pseudo-glosses in the training translations of {run.root}: eqs. 1-3 need at least one")
    run.cfg = dataclasses.replace(run.cfg, n_glosses=len(pg["vocab"]))
    net = train.build(run, "pretrain", prototypes=pg["prototypes"][:-1])   # fastText P, without the non-sign row
    step = pretrain_step(run, pg, args.lambda_psp, args.psp_loss, args.lambda_align)
    train.log(f"pre-training {args.preset} on {run.root} ({run.lang}): {len(pg['vocab'])} pseudo-glosses, "
              f"{model.count(net)[0]:,} trainable parameters, out {args.out}")
    best = train.fit(run, net, step, validator(run, step), args.epochs, "pretrain", lower_is_better=True,
                     extra={"pseudoglosses": {"vocab": pg["vocab"]}})  # the vocabulary travels with the weights
    train.log(f"best validation loss {best:.4f}: {args.out / 'pretrain.pt'}")


if __name__ == "__main__":
    main()
