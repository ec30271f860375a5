"""Fine-tuning for translation (paper §3.3, §4.2): start from the pre-trained encoders, add the mapper and
mBART's decoder, train eq. 6 in two stages (Cambrian-1's recipe) and keep the best dev BLEU-4.

    stage 1 (--stage1-epochs 100): only the mapper and the decoder's LoRA train
    stage 2 (--stage2-epochs 200): everything trainable trains

    python finetune.py --data synthetic                  # reads <out>/pretrain/, writes <out>/finetune/

This file is the method and its training loop (`train_stage`); what both loops share of §4.2 is in train.py, and
what is not method (flags, set-up, checkpoints, --resume, logs, data-parallel) is one call each into harness/.
"""
import math
from pathlib import Path

import torch
from tqdm import tqdm

import data
import losses
import metrics
import model
import train
from harness import checkpoint, cli, hf_folder, logs, parallel, run

# Stage 1 trains the mapper and the decoder (its LoRA; in the tiny preset, whose mBART trains whole, also the
# embedding the decoder shares with the encoder and the output layer); stage 2 everything that trains at all.
STAGE1 = ("mapper.", "mbart.model.decoder.", "mbart.model.shared.")
# The flags below that fix the result, besides cli.RESULT_FLAGS: --resume refuses a change of any of them
# (the --val-* flags too: the dev BLEU-4 decides which weights are kept)
RESULT_FLAGS = cli.RESULT_FLAGS + ("pretrained", "stage1_epochs", "stage2_epochs", "cache_features",
                                     "label_smoothing", "val_beams", "val_every", "val_scoring")
# How the dev BLEU-4 that picks the kept weights is measured, by preset (DESIGN.md "Training"): the paper preset as
# the authors' code (`finetune.py` L26, L138-141; `models/Finetune_Model.py` L108-150, L212): beam 4, every 2
# epochs, their scoring; the tiny preset greedily, every epoch, on the raw text, for speed.
VALIDATION = {"paper": dict(val_beams=4, val_every=2, val_scoring="authors"),
              "tiny": dict(val_beams=1, val_every=1, val_scoring="raw")}


def flags():
    ap = cli.training_flags(__doc__)
    ap.add_argument("--pretrained", help="pre-trained weights, pretrain.py's folder (default: <out>/pretrain; "
                    "none: from scratch, the study's no-pre-training variant)")
    ap.add_argument("--stage1-epochs", type=cli.non_negative_int, default=100,
                    help="stage 1: mapper and decoder LoRA only (§4.2)")
    ap.add_argument("--stage2-epochs", type=cli.non_negative_int, default=200,
                    help="stage 2: everything trainable (§4.2)")
    ap.add_argument("--cache-features", action="store_true", help="stage 1: run the frozen sign encoder once "
                    "per training video, without augmentation, and train on its cached output")
    ap.add_argument("--label-smoothing", type=cli.fraction, default=0.2,
                    help="of eq. 6's cross-entropy (the authors' 0.2)")
    ap.add_argument("--val-beams", type=cli.positive_int, help="beams of the dev translation whose BLEU-4 picks "
                    "the kept weights (default: paper 4, as the authors; tiny 1, greedy)")
    ap.add_argument("--val-every", type=cli.positive_int, help="validate every N epochs of a stage and after its "
                    "last (default: paper 2, as the authors; tiny 1)")
    ap.add_argument("--val-scoring", choices=["raw", "period", "authors"], help="the dev BLEU-4 on the corpus text "
                    "(raw), with ' .' appended (period), or as the authors' code: ' .' appended, references decoded "
                    "through the tokenizer (authors). Default: paper authors, tiny raw")
    return ap
def load_pretrained(net, state: dict):
    """Copy the pre-trained sign encoder and LLM encoder LoRA into the translation model; drop the
    pre-training heads (pseudo-gloss head, temperatures), which fine-tuning removes (§3.3)."""
    renamed = {}
    for k, v in state.items():
        if k.startswith("sign."):
            renamed[k] = v
        elif k.startswith("llm_encoder."):
            renamed["mbart.model.encoder." + k.removeprefix("llm_encoder.")] = v
    net.load_state_dict(renamed, strict=False)  # read and checked: hf_folder.read


@torch.no_grad()
def cache_features(setup: run.Setup, net) -> list:
    """The frozen sign encoder's output for every training video, computed once for stage 1 (--cache-features).
    Exact when augmentation is off, as here: stage 1 freezes the sign encoder and runs it in eval mode."""
    net.eval()
    items = []
    for batch in tqdm(train.loader(setup, "train", train=False), desc="caching features", leave=False,
                      disable=not parallel.is_main()):
        with train.autocast(setup.device):
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


def forward(net, batch, setup: run.Setup):
    """One batch of eq. 6: the video through the sign encoder, the mapper and mBART, teacher-forced on its
    sentence (decoder input `de_DE x`, labels `x </s>`)."""
    tok, device = setup.tok, setup.device
    _, (dec_ids, dec_mask), labels = train.text_batch(tok, batch["translations"], device)
    logits = net(*data.prepare(batch, device, train=net.training), dec_ids, dec_mask)
    return losses.translation_loss(logits, labels, tok.pad_id, setup.args.label_smoothing)      # eq. 6


def validate(net, dev, setup: run.Setup) -> dict:
    """Dev BLEU-1..4 of --val-beams beam search, scored as --val-scoring says."""
    args = setup.args
    hyps, refs = train.translate(net, dev, setup.tok, setup.device, num_beams=args.val_beams, desc="dev")
    return metrics.dev_bleu(hyps, refs, setup.tok, args.val_scoring, setup.lang)


def train_stage(setup: run.Setup, net, stage: int, best: float, trainable: set, lineage: dict = None,
                val_every: int = 1) -> float:
    """Stage 1 or 2 of §3.3 trained as §4.2 says: only STAGE1's parameters train in stage 1, everything
    `trainable` in stage 2; AdamW under the one-cycle schedule, stepped every batch; eq. 6, backward,
    gradients clipped at norm 1.0, update. Validates every `val_every` epochs and after the last, and keeps
    the weights with the best dev BLEU-4 over both stages (`best`: stage 1's, when stage 2 starts) in
    the folder <out>/finetune, with `lineage` (the pre-training it started from). -> that BLEU-4"""
    args = setup.args
    epochs = args.stage1_epochs if stage == 1 else args.stage2_epochs
    if epochs == 0:  # a skipped stage
        return best
    checkpoints = checkpoint.Checkpoints(setup, "finetune", f"finetune-stage{stage}", RESULT_FLAGS, names=trainable,
                                    extra=lineage)
    for n, p in net.named_parameters():
        p.requires_grad_(n in trainable and (stage == 2 or n.startswith(STAGE1)))
    cached = dict(ds=cache_features(setup, net), collate=collate_features) if stage == 1 and args.cache_features else {}
    batches, dev = train.loader(setup, "train", train=True, **cached), train.loader(setup, "dev", train=False)
    optimizer = torch.optim.AdamW(train.param_groups(net, args.weight_decay), lr=args.lr)
    scheduler = train.one_cycle(optimizer, args.warmup_epochs * len(batches), epochs * len(batches))
    epoch_range, best = checkpoints.resume(net, optimizer, scheduler, epochs, best)
    stepped = parallel.for_training(net, args.compile)             # data-parallel, --compile
    params = [p for p in net.parameters() if p.requires_grad]
    progress = logs.Progress(setup, f"finetune-stage{stage}", epochs)
    for epoch in epoch_range:
        train.start_epoch(net, batches, args.seed, epoch)
        for batch in progress.batches(batches, epoch):
            with train.autocast(setup.device):
                loss = forward(stepped, batch, setup)                                           # eq. 6
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)                                         # §4.2
            optimizer.step()
            scheduler.step()
            progress.step(loss=loss)
        val = progress.validated(validate(net, dev, setup) if train.validates(epoch, epochs, val_every) else {})
        improved = bool(val) and val["bleu4"] > best
        if improved:                                            # the best dev BLEU-4 is kept
            best = val["bleu4"]
            checkpoints.save_best(net, epoch, best)
        checkpoints.save_last(net, optimizer, scheduler, epoch, best)
        progress.end_epoch(scheduler.get_last_lr()[0], improved)
    progress.close()
    return best


def main(argv=None):
    ap = flags()
    args = cli.parse(ap, argv, "finetune")
    for k, v in VALIDATION.get(args.preset, VALIDATION["tiny"]).items():
        setattr(args, k, v if getattr(args, k) is None else getattr(args, k))
    if args.stage1_epochs + args.stage2_epochs == 0:
        ap.error("--stage1-epochs and --stage2-epochs are both 0: nothing to train")
    if args.pretrained == "none":
        pretrained, setup = None, run.setup(args, stage="finetune")
    else:
        path = args.out / "pretrain" if args.pretrained is None else Path(args.pretrained)
        if args.pretrained is not None and (not args.pretrained or not path.is_dir()):  # never passed over
            raise SystemExit(f"--pretrained: checkpoint not found: '{args.pretrained}' (pass pretrain.py's folder "
                             "<out>/pretrain, or none to fine-tune without pre-training)")
        pretrained = hf_folder.read(path, "pretrain", "--pretrained")
        setup = run.setup(args, stage="finetune", tok=pretrained.tok)  # the pre-training's tokenizer
        checkpoint.check_matches(setup, pretrained.config["model"], pretrained.tok.fingerprint(), path,
                                 ignore=("n_glosses",))  # the pseudo-glosses stay behind
    net = run.build(setup, "translation")
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}  # what the checkpoints hold
    if pretrained is not None:  # its frozen weights must be those the pre-training was trained on
        hf_folder.check_bases(pretrained, net, trainable, (("dino", "sha256"), ("mbart", "encoder_sha256")), setup.cfg)
        load_pretrained(net, pretrained.state)
    # the pre-training this model comes from (None: none), so that evaluate.py uses no other one
    lineage = {"pretrained": {"sha256": hf_folder.digest(path)} if pretrained is not None else None}
    parallel.log(f"fine-tuning {args.preset} on {setup.root}: {model.count(net)[0]:,} trainable parameters, "
              f"out {args.out}")
    best = -math.inf
    for stage in (1, 2):
        best = train_stage(setup, net, stage, best, trainable, lineage, args.val_every)
    parallel.log(f"best dev BLEU-4 {best:.2f}: {args.out / 'finetune'}")


if __name__ == "__main__":
    main()
