"""Pre-training (paper §3.2): align the segments with pseudo-glosses (eqs. 1-3) and the video with its sentence
(eq. 4), L_pre-train = L_align + lambda L_psp (eq. 5); keep the weights with the lowest validation loss.

    python pretrain.py --data phoenix14t     # paper preset, one GPU; writes runs/phoenix14t-paper/pretrain/
    python pretrain.py --data synthetic      # tiny preset, CPU minutes (after `python -m tools.synthetic`)

Read top to bottom: the recipe (every value of the stage, with its source), one batch of eq. 5 (and the same
batch held one micro-batch at a time, by GradCache), validation, the loop, and `main`, which sets the run up.
The run's bookkeeping (--resume, progress, keeping the best) is one object, harness.ledger.Ledger.
"""
import dataclasses
import math
from dataclasses import dataclass

import torch

import data
import losses
import model
import optim
import pseudogloss
from harness import cli, ledger, outdir, parallel, pseudogloss_cache, run
from harness.cli import value


@dataclass(frozen=True)
class Recipe:
    """Every value of pre-training with its source: §4.2, the equations, or the authors' code (GitHub
    elsobhano/MLLM, branch psp-dino, commit 73cc504). Each is a flag of the same name (--lambda-psp)."""
    epochs: int = value(100, "§4.2", "pre-training epochs")
    batch_size: int = value(16, "§4.2", "videos per optimiser step over all processes: eq. 4's negatives, "
                            "whatever --micro-batch-size")
    lr: float = value(3e-4, "§4.2", "peak learning rate of the one-cycle schedule")
    weight_decay: float = value(1e-3, "§4.2", "AdamW's weight decay, on weight matrices only")
    warmup_epochs: int = value(5, "§4.2", "epochs of warm-up before the cosine decay", cli.non_negative_int)
    start_div: float = value(25.0, "the authors' OneCycleLR: div_factor", "the schedule starts at lr / start_div")
    end_div: float = value(1e4, "the authors' OneCycleLR: final_div_factor", "it ends at lr / start_div / end_div")
    beta1_low: float = value(0.85, "the authors' OneCycleLR: base_momentum", "Adam's beta1 at the peak", cli.fraction)
    beta1_high: float = value(0.95, "the authors' OneCycleLR: max_momentum", "Adam's beta1 at both ends", cli.fraction)
    beta2: float = value(0.999, "the authors' AdamW", "Adam's beta2", cli.fraction)
    grad_clip: float = value(1.0, "§4.2", "gradients clipped to this norm")
    tau: float = value(0.1, "§4.2", "eq. 2's two temperatures, tau_t over time and tau_u over pseudo-glosses")
    lambda_psp: float = value(1.0, "eq. 5", "lambda, the pseudo-gloss loss's weight (0: none)", cli.non_negative_float)
    lambda_align: float = value(1.0, "eq. 5", "the alignment loss's weight (0: pseudo-glosses only)",
                                cli.non_negative_float)
    psp_loss: str = value("paper", "eq. 3", "eq. 3's BCE on E-hat over the U pseudo-glosses (paper), or the authors' "
                          "code: BCE-with-logits on E-hat over U + 1 columns", choices=("paper", "authors"))
    val_every: int = value(1, "the authors' code validates every epoch", "validate every N epochs and after the last")


# --resume refuses a change of any of these (cli.RESULT_FLAGS: the data, preset, frames, seed)
RESULT_FLAGS = cli.RESULT_FLAGS + tuple(f.name for f in dataclasses.fields(Recipe)) + ("fasttext",)


def flags():
    ap = cli.training_flags(__doc__, Recipe)
    ap.add_argument("--fasttext", type=cli.fasttext_file, help="the prototypes' fastText vectors: cc, fastText's "
                    "cc.<lang>.300 (the paper's; fetched from the Hub once, about 7 GB); skipgram, a skip-gram "
                    "trained on the training text; or a local .bin file (default: paper preset cc, tiny skipgram)")
    return ap


def batch_inputs(batch, setup: run.Setup, pg: pseudogloss.PseudoGlosses, train: bool) -> tuple:
    """The model's inputs for a batch: its frames prepared (augmented when training, §4.2), its sentences as the
    frozen text encoder reads them; and its pseudo-glosses H [B, U]."""
    (text_ids, text_mask), _, _ = data.text_batch(setup.tok, batch["translations"], setup.device)
    inputs = (*data.prepare(batch, setup.device, train=train), text_ids, text_mask)
    return inputs, pseudogloss.multi_hot(batch["names"], pg).to(setup.device)


def forward(net, batch, setup: run.Setup, pg: pseudogloss.PseudoGlosses) -> losses.PretrainLoss:
    """One batch of eq. 5: the video through the sign and LLM encoders, its sentence through the frozen text
    encoder, both losses against the sentence's pseudo-glosses H and the other videos of the batch."""
    args = setup.args
    inputs, labels = batch_inputs(batch, setup, pg, train=net.training)
    return losses.pretrain_loss(net(*inputs), labels, args.tau, args.lambda_psp, args.lambda_align, args.psp_loss)


def step(net, batch, setup: run.Setup, pg: pseudogloss.PseudoGlosses, scaler) -> losses.PretrainLoss:
    """Eq. 5 on a training batch and its gradients (scaled by `scaler`, optim.grad_scaler): in one pass, or with
    --micro-batch-size one micro-batch at a time (micro_batched_step). -> the batch's terms"""
    args = setup.args
    micros = data.micro_batches(batch, args.micro_batch_size)
    if len(micros) > 1:
        return micro_batched_step(net, [batch_inputs(m, setup, pg, True) for m in micros], args, scaler)
    with optim.autocast(setup.device, args.precision):
        terms = forward(net, batch, setup, pg)
    scaler.scale(terms.loss).backward()
    return terms


def micro_batched_step(net, micros: list, args, scaler) -> losses.PretrainLoss:
    """Eq. 5's gradients for a batch held one micro-batch at a time (--micro-batch-size), as GradCache does (Gao
    et al. 2021, DESIGN.md "Accumulation"): eq. 4 still compares every video with every sentence of the batch.
    `micros`: batch_inputs of each micro-batch, prepared once, so that both passes see the same augmented frames.
    Adds the whole batch's gradients to the parameters' (BatchNorm aside), scaled by `scaler` (optim.grad_scaler)
    like the plain step's. -> the whole batch's terms"""
    device, n = micros[0][0][0].device, sum(len(labels) for _, labels in micros)
    cache = []
    # (1) GradCache's "graph-less forward": M~ and L~ of each micro-batch, its random state kept for (3)
    with torch.no_grad(), optim.running_statistics_kept(net):
        for inputs, _ in micros:
            rng = optim.rng_state(device)
            with optim.autocast(device, args.precision):
                out = net(*inputs)
            cache.append((rng, *losses.pooled(out)))
    # (2) "representation gradient computation and caching": eq. 4 on the whole batch, from leaves M~ [B, D] and
    # the temperature; the gradients of lambda_align L_align with respect to them (float32 at least: no underflow)
    video = losses.wide(torch.cat([v for _, v, _ in cache])).requires_grad_()
    temperature = out["temperature"].detach().requires_grad_()
    align = losses.clip_loss(video, torch.cat([t for _, _, t in cache]), temperature)
    (args.lambda_align * align).backward()
    # (3) "sub-batch gradient accumulation": each micro-batch again with autograd and the same dropout/DropPath;
    # backward of M~ . dL/dM~ (the chain rule), its share of dL/dtemperature and of lambda L_psp (a mean over videos)
    psp, start = 0.0, 0
    for i, ((inputs, labels), (rng, _, _)) in enumerate(zip(micros, cache)):
        rows, share = slice(start, start + len(labels)), len(labels) / n
        optim.set_rng_state(rng, device)
        with parallel.no_sync(net, skip=i + 1 < len(micros)):  # under torchrun: averaged in the last backward
            with optim.autocast(device, args.precision):
                out = net(*inputs)
                part = losses.psp_loss(out, labels, args.tau, args.psp_loss)                    # eqs. 1-3
                surrogate = ((losses.wide(losses.pooled(out)[0]) * video.grad[rows]).sum()
                             + share * (out["temperature"] * temperature.grad + args.lambda_psp * part))
            scaler.scale(surrogate).backward()
        psp, start = psp + share * part.detach(), rows.stop
    return losses.pretrain_terms(align.detach(), psp, args.lambda_psp, args.lambda_align)         # eq. 5


@torch.no_grad()
def validate(net, dev, setup: run.Setup, pg: pseudogloss.PseudoGlosses) -> dict:
    """The validation loss: eq. 5 and its two terms, averaged over the dev videos."""
    net.eval()
    sums, n = {}, 0
    for batch in dev:
        with optim.autocast(setup.device, setup.args.precision):
            terms = forward(net, batch, setup, pg)._asdict()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(batch["names"])
        n += len(batch["names"])
    return {k: v / n for k, v in sums.items()}


def pretrain(setup: run.Setup, net, pg: pseudogloss.PseudoGlosses, book: ledger.Ledger) -> float:
    """§3.2 trained as §4.2 says: AdamW under the one-cycle schedule, stepped every batch; eq. 5, backward,
    gradients clipped, update. Validates as `book` says, which keeps the weights with the lowest validation loss
    (the folder <out>/pretrain). -> that loss"""
    args = setup.args
    batches, dev = run.loader(setup, "train", augment=True), run.loader(setup, "dev", augment=False)
    optimizer, scheduler, scaler = optim.adamw_one_cycle(net, args, len(batches), args.epochs, setup.device)
    epochs = book.resume(net, optimizer, scheduler)
    ddp_net = parallel.for_training(net, args.compile)  # net under torchrun's data-parallel and --compile
    params = [p for p in net.parameters() if p.requires_grad]
    for epoch in epochs:
        optim.train_mode(net)
        for batch in book.batches(batches, epoch):
            optimizer.zero_grad(set_to_none=True)
            terms = step(ddp_net, batch, setup, pg, scaler)                                     # eq. 5
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, args.grad_clip)                              # §4.2
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            book.step(**terms._asdict())
        val = validate(net, dev, setup, pg) if book.validates(epoch) else None
        book.end_epoch(epoch, val, net, optimizer, scheduler)  # keeps the lowest validation loss (§4.2)
    return book.close()


def main(argv=None):
    args = cli.parse(flags(), argv, "pretrain")
    setup = run.setup(args, stage="pretrain")
    with parallel.main_process_first():
        # cached in the run's folder and for later runs (never the data root, which may be read-only)
        vectors = pseudogloss.fasttext_model_file(args.fasttext, setup.lang)  # says which prototypes
        pg = pseudogloss_cache.pseudoglosses(setup.root, fasttext_path=vectors, cache_dir=args.out / "cache",
                                             lang=setup.lang, shared=pseudogloss_cache.shared_dir())
    if not pg.vocab:
        raise SystemExit(f"no pseudo-glosses in the training translations of {setup.root}: eqs. 1-3 need at least one")
    setup.cfg = dataclasses.replace(setup.cfg, n_glosses=len(pg.vocab))
    net = run.build(setup, "pretrain", prototypes=pg.prototypes[:-1])  # fastText P, without the non-sign row
    book = ledger.Ledger(setup, "pretrain", "pretrain", RESULT_FLAGS, args.epochs, args.val_every,
                         extra={"vocab": pg.vocab})  # the vocabulary travels with the weights
    outdir.commit(args.out)  # --resume's state is checked: the later stages' files move aside
    parallel.log(f"pre-training {args.preset} on {setup.root} ({setup.lang}): {len(pg.vocab)} pseudo-glosses, "
                 f"{model.count(net)[0]:,} trainable parameters, out {args.out}")
    best = pretrain(setup, net, pg, book)
    if not math.isfinite(best):  # no validation ran (--stop-after before it): no kept weights yet
        parallel.log(f"no validation loss yet: {args.out / 'pretrain'} not written; continue with --resume")
        return
    parallel.log(f"best validation loss {best:.4f}: {args.out / 'pretrain'}")


if __name__ == "__main__":
    main()
