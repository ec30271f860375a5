"""Fine-tuning for translation (paper §3.3, §4.2): start from the pre-trained encoders, add the mapper and
mBART's decoder, train eq. 6 in two stages (Cambrian-1's recipe) and keep the best dev BLEU-4.

    stage 1 (--stage1-epochs 100): only the mapper and the decoder's LoRA train
    stage 2 (--stage2-epochs 200): everything trainable trains

    python finetune.py --data synthetic                  # reads <out>/pretrain.pt, writes <out>/finetune.pt
"""
import torch
from tqdm import tqdm

import data
import evaluate
import losses
import model
import runs
import train

# Stage 1 trains the mapper and the decoder (its LoRA; in the tiny preset, whose mBART trains whole, also the
# embedding the decoder shares with the encoder and the output layer); stage 2 everything that trains at all.
STAGE1 = ("mapper.", "mbart.model.decoder.", "mbart.model.shared.")


def load_pretrained(net, state: dict):
    """Copy the pre-trained sign encoder and LLM encoder LoRA into the translation model; drop the
    pre-training heads (pseudo-gloss head, temperatures), which fine-tuning removes (§3.3)."""
    renamed = {}
    for k, v in state.items():
        if k.startswith("sign."):
            renamed[k] = v
        elif k.startswith("llm_encoder."):
            renamed["mbart.model.encoder." + k.removeprefix("llm_encoder.")] = v
    train.load_weights(net, renamed)


@torch.no_grad()
def cache_features(run, net) -> list:
    """The frozen sign encoder's output for every training video, computed once for stage 1 (--cache-features).
    Exact when augmentation is off, as here: stage 1 freezes the sign encoder and runs it in eval mode."""
    net.eval()
    items = []
    for batch in tqdm(train.loader(run, "train", train=False), desc="caching features", leave=False,
                      disable=not train.is_main()):
        with train.autocast(run.device):
            s, mask = net.sign(*data.prepare(batch, run.device, train=False))
        items += [{"features": s[i, :n].cpu(), "name": name, "translation": text}
                  for i, (n, name, text) in enumerate(zip(mask.sum(1).tolist(), batch["names"], batch["translations"]))]
    return items


def collate_features(items) -> dict:
    """Cached features as a batch: the frame fields of data.collate, holding features [B, T, D] instead."""
    lengths = torch.tensor([len(x["features"]) for x in items])
    return {"frames": torch.nn.utils.rnn.pad_sequence([x["features"] for x in items], batch_first=True),
            "frame_mask": torch.arange(int(lengths.max()))[None] < lengths[:, None],
            "names": [x["name"] for x in items], "translations": [x["translation"] for x in items]}


def main(argv=None):
    ap = train.training_flags(__doc__)
    ap.add_argument("--pretrained", help="pre-trained weights (default: <out>/pretrain.pt; none: from scratch, "
                    "the study's no-pre-training variant)")
    ap.add_argument("--stage1-epochs", type=runs.non_negative_int, default=100, help="stage 1: mapper and decoder LoRA only (§4.2)")
    ap.add_argument("--stage2-epochs", type=runs.non_negative_int, default=200, help="stage 2: everything trainable (§4.2)")
    ap.add_argument("--cache-features", action="store_true", help="stage 1: run the frozen sign encoder once "
                    "per training video, without augmentation, and train on its cached output")
    ap.add_argument("--label-smoothing", type=runs.fraction, default=0.2, help="of eq. 6's cross-entropy (the authors' 0.2)")
    ap.add_argument("--val-beams", type=runs.positive_int, default=1, help="beams for the dev BLEU-4 of each epoch "
                    "(greedy by default, for speed; evaluate.py uses 4)")
    args = train.parse(ap, argv)
    if args.stage1_epochs + args.stage2_epochs == 0:
        ap.error("--stage1-epochs and --stage2-epochs are both 0: nothing to train")
    if args.pretrained == "none":
        pretrained, run = None, train.setup(args, stage="finetune")
    else:
        path = args.pretrained or args.out / "pretrain.pt"
        pretrained = train.load_checkpoint(path, "pretrain")
        run = train.setup(args, stage="finetune", tokenizer_state=pretrained["tokenizer"])  # the pre-training's tokenizer
        train.check_matches(run, pretrained, path, ignore=("n_glosses",))  # the pseudo-glosses stay in pre-training
    net = train.build(run, "translation")
    if pretrained is not None:
        load_pretrained(net, pretrained["model"])
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    tok, device = run.tok, run.device
    dev = train.loader(run, "dev", train=False)

    def step(net, batch):
        _, (dec_ids, dec_mask), labels = train.text_batch(tok, batch["translations"], device)
        logits = net(*data.prepare(batch, device, train=net.training), dec_ids, dec_mask)
        loss = losses.translation_loss(logits, labels, tok.pad_id, args.label_smoothing)
        return loss, {"loss": loss}

    def validate(net):
        hyps, refs = evaluate.translate(net, dev, tok, device, num_beams=args.val_beams, desc="dev")
        b = evaluate.bleu(hyps, refs, run.lang)
        return b["bleu4"], b

    train.log(f"fine-tuning {args.preset} on {run.root}: {model.count(net)[0]:,} trainable parameters, out {args.out}")
    best = None
    for stage, epochs in ((1, args.stage1_epochs), (2, args.stage2_epochs)):
        for n, p in net.named_parameters():
            p.requires_grad_(n in trainable and (stage == 2 or n.startswith(STAGE1)))
        cached = stage == 1 and args.cache_features and epochs > 0
        train_set = dict(ds=cache_features(run, net), collate=collate_features) if cached else {}
        best = train.fit(run, net, step, validate, epochs, f"finetune-stage{stage}", lower_is_better=False,
                            best_name="finetune", best=best, keep=trainable, **train_set)
    train.log(f"best dev BLEU-4 {best:.2f}: {args.out / 'finetune.pt'}")


if __name__ == "__main__":
    main()
