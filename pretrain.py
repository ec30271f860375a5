"""Pre-training (paper §3.2): align the segments with pseudo-glosses (eqs. 1-3) and the video with its sentence
(eq. 4), L_pre-train = L_align + lambda L_psp (eq. 5); keep the weights with the lowest validation loss.

    python pretrain.py --data phoenix14t     # paper preset, one GPU; writes runs/phoenix14t-paper/pretrain/
    python pretrain.py --data synthetic      # tiny preset, CPU minutes (after `python -m tools.synthetic`)

This file is the method and its training loop (`pretrain`); what both loops share of §4.2 is in train.py, and
what is not method (flags, set-up, checkpoints, --resume, logs, data-parallel) is one call each into harness/.
"""
import dataclasses
import math

import torch

import data
import losses
import model
import pseudogloss
import train
from harness import checkpoint, cli, logs, parallel, run

# The flags below that fix the result, besides cli.RESULT_FLAGS: --resume refuses a change of any of them
RESULT_FLAGS = cli.RESULT_FLAGS + ("epochs", "lambda_psp", "psp_loss", "lambda_align", "fasttext")


def flags():
    ap = cli.training_flags(__doc__)
    ap.add_argument("--epochs", type=cli.positive_int, default=100, help="pre-training epochs (§4.2)")
    ap.add_argument("--lambda-psp", type=cli.non_negative_float, default=1.0,
                    help="lambda of eq. 5 (0: no pseudo-gloss loss)")
    ap.add_argument("--psp-loss", choices=["paper", "authors"], default="paper", help="eq. 3's BCE on E-hat over "
                    "the U pseudo-glosses (paper), or the authors' code: BCE-with-logits on E-hat over U + 1 columns")
    ap.add_argument("--lambda-align", type=cli.non_negative_float, default=1.0, help="weight of eq. 4's L_align in "
                    "eq. 5 (the paper: 1; 0: pseudo-glosses only)")
    ap.add_argument("--fasttext", type=cli.fasttext_file, help="cc.de.300.bin (cc.en/cc.zh for the other "
                    "languages) for the prototypes (default: skip-gram on the training text)")
    return ap


def loss_terms(out: dict, labels, lambda_psp: float = 1.0, psp_variant: str = "paper", lambda_align: float = 1.0):
    """Eq. 5 from PretrainModel's outputs, in the paper's order: L_psp of the segments against the pseudo-glosses
    H (eqs. 1-3), L_align of the pooled video against its pooled sentence (eq. 4), their sum. -> (loss, align, psp)"""
    psp = losses.pseudo_gloss_loss(out["glosses"], out["mask"], out["prototypes"], labels, out["tau_t"],
                                   out["tau_u"], variant=psp_variant)                            # eqs. 1-3
    video = losses.masked_mean(out["video"], out["video_mask"])     # M~: the CLS token and the valid segments
    text = losses.masked_mean(out["text"], out["text_mask"])        # L~: the sentence's tokens
    align = losses.clip_loss(video, text, out["temperature"])                                    # eq. 4
    return losses.pretrain_loss(align, psp, lambda_psp, lambda_align), align, psp                # eq. 5


def forward(net, batch, setup: run.Setup, pg: pseudogloss.PseudoGlosses):
    """One batch of eq. 5: the video through the sign and LLM encoders, its sentence through the frozen text
    encoder, both losses against the sentence's pseudo-glosses H and the other videos of the batch."""
    args = setup.args
    (text_ids, text_mask), _, _ = train.text_batch(setup.tok, batch["translations"], setup.device)
    out = net(*data.prepare(batch, setup.device, train=net.training), text_ids, text_mask)
    labels = pseudogloss.multi_hot(batch["names"], pg).to(setup.device)                         # H [B, U]
    return loss_terms(out, labels, args.lambda_psp, args.psp_loss, args.lambda_align)


@torch.no_grad()
def validate(net, dev, setup: run.Setup, pg: pseudogloss.PseudoGlosses) -> dict:
    """The validation loss: eq. 5 and its two terms, averaged over the dev videos."""
    net.eval()
    sums, n = {}, 0
    for batch in dev:
        with train.autocast(setup.device):
            terms = dict(zip(("loss", "align", "psp"), forward(net, batch, setup, pg)))
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(batch["names"])
        n += len(batch["names"])
    return {k: v / n for k, v in sums.items()}


def pretrain(setup: run.Setup, net, pg: pseudogloss.PseudoGlosses, val_every: int = 1) -> float:
    """§3.2 trained as §4.2 says: AdamW under the one-cycle schedule, stepped every batch; eq. 5, backward,
    gradients clipped at norm 1.0, update. Validates every `val_every` epochs and after the last, and keeps
    the weights with the lowest validation loss (the folder <out>/pretrain). -> that loss"""
    args = setup.args
    checkpoints = checkpoint.Checkpoints(setup, "pretrain", "pretrain", RESULT_FLAGS,
                                         extra={"vocab": pg.vocab})  # the vocabulary travels along
    batches, dev = train.loader(setup, "train", train=True), train.loader(setup, "dev", train=False)
    optimizer = torch.optim.AdamW(train.param_groups(net, args.weight_decay), lr=args.lr)
    scheduler = train.one_cycle(optimizer, args.warmup_epochs * len(batches), args.epochs * len(batches))
    epochs, best = checkpoints.resume(net, optimizer, scheduler, args.epochs, best=math.inf)
    stepped = parallel.for_training(net, args.compile)             # data-parallel, --compile
    params = [p for p in net.parameters() if p.requires_grad]
    progress = logs.Progress(setup, "pretrain", args.epochs)
    for epoch in epochs:
        train.start_epoch(net, batches, args.seed, epoch)
        for batch in progress.batches(batches, epoch):
            with train.autocast(setup.device):
                loss, align, psp = forward(stepped, batch, setup, pg)                           # eq. 5
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)                                         # §4.2
            optimizer.step()
            scheduler.step()
            progress.step(loss=loss, align=align, psp=psp)
        val = progress.validated(validate(net, dev, setup, pg) if train.validates(epoch, args.epochs, val_every)
                                 else {})
        improved = bool(val) and val["loss"] < best
        if improved:                                            # §4.2: the lowest validation loss is kept
            best = val["loss"]
            checkpoints.save_best(net, epoch, best)
        checkpoints.save_last(net, optimizer, scheduler, epoch, best)
        progress.end_epoch(scheduler.get_last_lr()[0], improved)
    progress.close()
    return best


def main(argv=None):
    args = cli.parse(flags(), argv, "pretrain")
    setup = run.setup(args, stage="pretrain")
    with parallel.main_process_first():
        # cached in the run's folder and for later runs (never the data root, which may be read-only)
        pg = pseudogloss.build_pseudoglosses(setup.root, fasttext_path=args.fasttext, cache_dir=args.out / "cache",
                                             lang=setup.lang, shared_dir=pseudogloss.shared_cache_dir())
    if not pg.vocab:
        raise SystemExit(f"no pseudo-glosses in the training translations of {setup.root}: eqs. 1-3 need at least one")
    setup.cfg = dataclasses.replace(setup.cfg, n_glosses=len(pg.vocab))
    net = run.build(setup, "pretrain", prototypes=pg.prototypes[:-1])  # fastText P, without the non-sign row
    parallel.log(f"pre-training {args.preset} on {setup.root} ({setup.lang}): {len(pg.vocab)} pseudo-glosses, "
              f"{model.count(net)[0]:,} trainable parameters, out {args.out}")
    best = pretrain(setup, net, pg)
    if not math.isfinite(best):  # no validation ran (--stop-after before it): no kept weights yet
        parallel.log(f"no validation loss yet: {args.out / 'pretrain'} not written; continue with --resume")
        return
    parallel.log(f"best validation loss {best:.4f}: {args.out / 'pretrain'}")


if __name__ == "__main__":
    main()
