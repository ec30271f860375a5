"""Fine-tuning for translation (paper §3.3, §4.2): start from the pre-trained encoders, add the mapper and
mBART's decoder, train eq. 6 in two stages (Cambrian-1's recipe) and keep the best dev BLEU-4.

Stage 1 trains only the mapper and the decoder's LoRA, stage 2 everything trainable.

    python finetune.py --data synthetic                  # reads <out>/pretrain/, writes <out>/finetune/

Read top to bottom: the recipe (every value, with its source), one batch of eq. 6, validation, the loop of one
stage, and `main`. The run's bookkeeping is one object, harness.ledger.Ledger.
"""
import dataclasses
import math
from dataclasses import dataclass

import torch

import data
import losses
import metrics
import model
import optim
from harness import cli, hf_folder, ledger, outdir, parallel, run
from harness.cli import value


@dataclass(frozen=True)
class Recipe:
    """Every value of fine-tuning with its source: §4.2, or the authors' code (GitHub elsobhano/MLLM, branch
    psp-dino, commit 73cc504). Each is a flag of the same name (--label-smoothing)."""
    stage1_epochs: int = value(100, "§4.2", "stage 1: the mapper and the decoder's LoRA only", cli.non_negative_int)
    stage2_epochs: int = value(200, "§4.2", "stage 2: everything trainable", cli.non_negative_int)
    batch_size: int = value(16, "§4.2", "videos per optimiser step over all processes, whatever "
                            "--micro-batch-size")
    lr: float = value(3e-4, "§4.2", "peak learning rate of each stage's one-cycle schedule")
    weight_decay: float = value(1e-3, "§4.2", "AdamW's weight decay, on weight matrices only")
    warmup_epochs: int = value(5, "§4.2", "epochs of warm-up before the cosine decay", cli.non_negative_int)
    start_div: float = value(25.0, "the authors' OneCycleLR: div_factor", "the schedule starts at lr / start_div")
    end_div: float = value(1e4, "the authors' OneCycleLR: final_div_factor", "it ends at lr / start_div / end_div")
    beta1_low: float = value(0.85, "the authors' OneCycleLR: base_momentum", "Adam's beta1 at the peak", cli.fraction)
    beta1_high: float = value(0.95, "the authors' OneCycleLR: max_momentum", "Adam's beta1 at both ends", cli.fraction)
    beta2: float = value(0.999, "the authors' AdamW", "Adam's beta2", cli.fraction)
    grad_clip: float = value(1.0, "§4.2", "gradients clipped to this norm")
    label_smoothing: float = value(0.2, "the authors' models/Finetune_Model.py", "of eq. 6's cross-entropy",
                                   cli.fraction)
    val_beams: int = value(4, "the authors' models/Finetune_Model.py L212 @73cc504", "beams of the dev translation "
                           "whose BLEU-4 picks the kept weights")
    val_every: int = value(2, "the authors' finetune.py L26 @73cc504", "validate every N epochs of a stage and "
                           "after its last")
    val_scoring: str = value("authors", "the authors' models/Finetune_Model.py L108-150 @73cc504", "the dev BLEU-4 "
                             "on the corpus text (raw), with ' .' appended (period), or as the authors' code: ' .' "
                             "appended, references decoded through the tokenizer (authors)",
                             choices=("raw", "period", "authors"))


# The tiny preset validates greedily, every epoch, on the raw text: CPU minutes (DESIGN.md "Training")
TINY = dict(val_beams=1, val_every=1, val_scoring="raw")
# Stage 1 trains the mapper and the decoder (its LoRA; in the tiny preset, whose mBART trains whole, also the
# embedding the decoder shares with the encoder and the output layer); stage 2 everything that trains at all.
STAGE1 = ("mapper.", "mbart.model.decoder.", "mbart.model.shared.")
# --resume refuses a change of any of these (cli.RESULT_FLAGS: the data, preset, frames, seed)
RESULT_FLAGS = cli.RESULT_FLAGS + tuple(f.name for f in dataclasses.fields(Recipe)) + ("pretrained", "cache_features")


def flags():
    ap = cli.training_flags(__doc__, Recipe)
    ap.add_argument("--pretrained", help="pre-trained weights, pretrain.py's folder (default: <out>/pretrain; "
                    "none: from scratch, the study's no-pre-training variant)")
    ap.add_argument("--cache-features", action="store_true", help="stage 1: run the frozen sign encoder once "
                    "per training video, without augmentation, and train on its cached output")
    return ap


def load_pretrained(net, state: dict):
    """Copy the pre-trained sign encoder and LLM encoder LoRA into the translation model; drop the
    pre-training heads (pseudo-gloss head, temperatures), which fine-tuning removes (§3.3)."""
    renamed = {("mbart.model.encoder." + k.removeprefix("llm_encoder.") if k.startswith("llm_encoder.") else k): v
               for k, v in state.items() if k.startswith(("sign.", "llm_encoder."))}
    net.load_state_dict(renamed, strict=False)  # read and checked: hf_folder.read


def accumulated_step(net, micros: list, pad_id: int, label_smoothing: float, precision: str, scaler):
    """Eq. 6 and its gradients (scaled by `scaler`, optim.grad_scaler) for a batch: each video through the sign
    encoder, the mapper and mBART, teacher-forced on its sentence, one micro-batch at a time (`micros`, of
    data.translation_inputs; --micro-batch-size, by default the whole batch). Eq. 6 averages over the batch's
    non-pad tokens, so each micro-batch's mean counts by its share of them (BatchNorm aside). -> the batch's eq. 6"""
    tokens = [int((labels != pad_id).sum()) for _, labels in micros]
    device, total = micros[0][1].device, 0.0
    for i, ((inputs, labels), n) in enumerate(zip(micros, tokens)):
        with parallel.no_sync(net, skip=i + 1 < len(micros)):  # under torchrun: averaged in the last backward
            with optim.autocast(device, precision):
                loss = losses.translation_loss(net(*inputs), labels, pad_id, label_smoothing) * (n / sum(tokens))
            scaler.scale(loss).backward()
        total += loss.detach()
    return total


def validate(net, dev, setup: run.Setup) -> dict:
    """Dev BLEU-1..4 of --val-beams beam search, scored as --val-scoring says."""
    args = setup.args
    hyps, refs = run.translate(net, dev, setup.tok, setup.device, args.val_beams, desc="dev", precision=args.precision)
    return metrics.dev_bleu(hyps, refs, setup.tok, args.val_scoring, setup.lang)


def train_stage(setup: run.Setup, net, stage: int, book: ledger.Ledger, trainable: set, best: float) -> float:
    """Stage 1 or 2 of §3.3 as §4.2 says: STAGE1's parameters train in stage 1, all `trainable` in stage 2. `book`
    keeps the best dev BLEU-4 of both stages (`best`: stage 1's, as stage 2 starts) as <out>/finetune. -> it"""
    args = setup.args
    for n, p in net.named_parameters():
        p.requires_grad_(n in trainable and (stage == 2 or n.startswith(STAGE1)))
    cached = run.cached_features(setup, net) if stage == 1 and args.cache_features else {}  # a DataLoader's ds, collate
    batches, dev = run.loader(setup, "train", augment=True, **cached), run.loader(setup, "dev", augment=False)
    optimizer, scheduler, scaler = optim.adamw_one_cycle(net, args, len(batches), book.epochs_total, setup.device)
    epochs = book.resume(net, optimizer, scheduler, best)
    ddp_net = parallel.for_training(net, args.compile)  # net under torchrun's data-parallel and --compile
    params = [p for p in net.parameters() if p.requires_grad]
    for epoch in epochs:
        optim.train_mode(net)
        for batch in book.batches(batches, epoch):
            optimizer.zero_grad(set_to_none=True)
            micros = [data.translation_inputs(m, setup.tok, setup.device, True)
                      for m in data.micro_batches(batch, args.micro_batch_size)]
            loss = accumulated_step(ddp_net, micros, setup.tok.pad_id, args.label_smoothing, args.precision, scaler)
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(params, args.grad_clip)                              # §4.2
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            book.step(loss=loss)
        val = validate(net, dev, setup) if book.validates(epoch) else None
        book.end_epoch(epoch, val, net, optimizer, scheduler)  # keeps the best dev BLEU-4
    return book.close()


def main(argv=None):
    ap = flags()
    args = cli.parse(ap, argv, "finetune", tiny=TINY)
    if args.stage1_epochs + args.stage2_epochs == 0:
        ap.error("--stage1-epochs and --stage2-epochs are both 0: nothing to train")
    setup, pretrained = run.setup_finetune(args)  # with the pre-training's tokenizer, checked against this run
    net = run.build(setup, "translation")
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}  # what the checkpoints hold
    if pretrained is not None:  # its frozen weights must be those the pre-training was trained on
        hf_folder.check_bases(pretrained, net, trainable, (("dino", "sha256"), ("mbart", "encoder_sha256")), setup.cfg)
        load_pretrained(net, pretrained.state)
    # the pre-training this model comes from (None: none), so that evaluate.py uses no other one
    lineage = {"pretrained": {"sha256": hf_folder.digest(pretrained.path)} if pretrained is not None else None}
    books = {stage: ledger.Ledger(setup, "finetune", f"finetune-stage{stage}", RESULT_FLAGS, epochs, args.val_every,
                                  names=trainable, extra=lineage)
             for stage, epochs in ((1, args.stage1_epochs), (2, args.stage2_epochs)) if epochs}  # 0: skipped
    outdir.commit(args.out)  # --resume's states are checked: the later stages' files move aside
    parallel.log(f"fine-tuning {args.preset} on {setup.root}: {model.count(net)[0]:,} trainable parameters, "
                 f"out {args.out}")
    best = -math.inf
    for stage, book in books.items():
        best = train_stage(setup, net, stage, book, trainable, best)
    parallel.log(f"best dev BLEU-4 {best:.2f}: {args.out / 'finetune'}")


if __name__ == "__main__":
    main()
