"""Evaluation (paper §4.1): beam-search translation of a split, scored with BLEU-1..4 and ROUGE-L as Table 1
reports them.

    python evaluate.py --data synthetic --split test    # reads <out>/finetune.pt, writes <out>/test.{hyp,ref}.txt

The levels below translation (retrieval, where each pseudo-gloss is found, a video of your own) are measured by
`python -m tools.analysis`.
"""
from pathlib import Path

import metrics
import train
from harness import checkpoint, cli, files, run

TABLE_HEADER = f"{'':<28}{'BLEU-1':>8}{'BLEU-2':>8}{'BLEU-3':>8}{'BLEU-4':>8}{'ROUGE':>8}"


def table_row(name: str, s: dict) -> str:
    """One row in the layout of the paper's Table 1."""
    return f"{name:<28}{s['bleu1']:>8.2f}{s['bleu2']:>8.2f}{s['bleu3']:>8.2f}{s['bleu4']:>8.2f}{s['rouge']:>8.2f}"


def flags(doc: str = __doc__):
    ap = cli.data_flags(doc)
    ap.add_argument("--split", default="test", choices=["dev", "test"], help="which split to translate")
    ap.add_argument("--checkpoint", type=Path, help="the fine-tuned weights (default: <out>/finetune.pt)")
    ap.add_argument("--beams", type=cli.positive_int, default=4, help="beam width (the authors' code; the paper "
                    "gives none)")
    ap.add_argument("--max-new-tokens", type=cli.positive_int, default=150, help="longest translation, in tokens")
    return ap


def translation_model(args, ckpt: dict, stage: str = None, splits=()):
    """The fine-tuned model of a checkpoint, with the tokenizer it was trained with (not one rebuilt here), on
    the run's device in eval mode; `stage` claims --out (harness.outdir). -> (setup, model)"""
    setup = run.setup(args, config=ckpt["config"], stage=stage, tokenizer_state=ckpt["tokenizer"], splits=splits)
    net = run.build(setup, "translation")
    checkpoint.load_weights(net, ckpt["model"])
    return setup, net.eval()


def main(argv=None):
    args = cli.parse(flags(), argv)
    ckpt = checkpoint.load_checkpoint(args.checkpoint or args.out / "finetune.pt", "finetune")
    setup, net = translation_model(args, ckpt, stage="evaluate", splits=(args.split,))
    hyps, refs = train.translate(net, train.loader(setup, args.split, train=False), setup.tok, setup.device,
                                 args.beams, args.max_new_tokens)                                  # §4.1
    for kind, lines in (("hyp", hyps), ("ref", refs)):
        files.atomic_write(args.out / f"{args.split}.{kind}.txt",
                           lambda tmp: tmp.write_text("".join(line + "\n" for line in lines)))
    result = metrics.scores(hyps, refs, setup.lang)
    print(metrics.scoring_note(setup.lang))
    print(TABLE_HEADER)
    print(table_row(f"{args.split} (raw)", result))
    if setup.lang == "de":  # PHOENIX14T's conventions, for comparison with its papers (README)
        period = metrics.scores([h + " ." for h in hyps], [r + " ." for r in refs])
        print(table_row(f"{args.split} (' .' appended)", period))
        print(table_row(f"{args.split} (authors' scoring)", metrics.authors_scores(hyps, refs, setup.tok)))
    print(f"wrote {args.out / f'{args.split}.hyp.txt'} and {args.out / f'{args.split}.ref.txt'}")
    return result


if __name__ == "__main__":
    main()
