"""Evaluation (paper §4.1): beam-search translation of a split, BLEU-1..4 and ROUGE-L as Table 1 reports them;
with the run's pre-training checkpoint also the levels below translation (analysis.py): retrieval at the
video level and, on the synthetic corpus, where the segment level finds each pseudo-gloss.

    python evaluate.py --data synthetic --split test        # reads <out>/finetune.pt, writes <out>/test.{hyp,ref}.txt
    python evaluate.py --data synthetic --video clip.mp4    # one video of your own (a file, or a folder of frames)
"""
from pathlib import Path

import analysis
import data
import metrics
import runs
import train


def table_row(name: str, s: dict) -> str:
    """One row in the layout of the paper's Table 1."""
    return f"{name:<28}{s['bleu1']:>8.2f}{s['bleu2']:>8.2f}{s['bleu3']:>8.2f}{s['bleu4']:>8.2f}{s['rouge']:>8.2f}"


TABLE_HEADER = f"{'':<28}{'BLEU-1':>8}{'BLEU-2':>8}{'BLEU-3':>8}{'BLEU-4':>8}{'ROUGE':>8}"


def pretraining(args, ckpt: dict, ckpt_path: Path):
    """The pre-training checkpoint for the levels below translation (retrieval, localisation, --video's
    pseudo-glosses): --pretrained, else the pretrain.pt beside the fine-tuned checkpoint. Used only if it is
    the one that model was fine-tuned from (the sha256 finetune.py records) with its tokenizer; otherwise the
    default is not used and the output says why, and --pretrained is an error. -> the checkpoint, read once;
    None: not used."""
    what = "pseudo-glosses not shown" if args.video else "retrieval and localisation not measured"
    path = ckpt_path.parent / "pretrain.pt" if args.pretrained is None else Path(args.pretrained)
    if not path.is_file():
        if args.pretrained is not None:
            raise SystemExit(f"--pretrained: checkpoint not found: '{args.pretrained}' (pass pretrain.py's "
                             "<out>/pretrain.pt, the one the model was fine-tuned from)")
        print(f"{what}: no pre-training checkpoint '{path}'")
        return None
    pre, lineage = runs.load_checkpoint(path, "pretrain"), ckpt.get("pretrained", "unknown")
    if pre["tokenizer"]["fingerprint"] != ckpt["tokenizer"]["fingerprint"]:
        why = (f"its tokenizer differs ({pre['tokenizer']['fingerprint'][:12]}, the model's "
               f"{ckpt['tokenizer']['fingerprint'][:12]}): another run's pre-training")
    elif lineage == "unknown":
        why = "the model does not record which pre-training it came from (fine-tuned by an older version)"
    elif lineage is None:
        why = "the model was fine-tuned without pre-training (--pretrained none)"
    elif lineage.get("sha256") != runs.file_digest(path):
        why = "it is not the pre-training that the model was fine-tuned from (another or a later pretrain.py run)"
    else:
        return pre
    if args.pretrained is not None:
        raise SystemExit(f"--pretrained '{path}' does not belong to '{ckpt_path}': {why}")
    print(f"{what}: '{path}' does not belong to '{ckpt_path}': {why}")
    return None


def main(argv=None):
    ap = train.data_flags(__doc__)
    ap.add_argument("--split", default="test", choices=["dev", "test"], help="which split to translate")
    ap.add_argument("--checkpoint", type=Path, help="the fine-tuned weights (default: <out>/finetune.pt)")
    ap.add_argument("--beams", type=runs.positive_int, default=4, help="beam width (§4.2)")
    ap.add_argument("--max-new-tokens", type=runs.positive_int, default=150, help="longest translation, in tokens")
    ap.add_argument("--video", type=Path, help="translate this video (mp4, webm, avi, mov; or a folder of frame "
                    "images) instead of a split; reads no dataset")
    ap.add_argument("--pretrained", help="the pre-training checkpoint for retrieval, localisation and --video's "
                    "pseudo-glosses (default: the pretrain.pt beside --checkpoint); only the one the model was "
                    "fine-tuned from is used")
    ap.add_argument("--threshold", type=runs.non_negative_float, default=0.5,
                    help="--video: show pseudo-glosses with E-hat above this")
    ap.add_argument("--top", type=runs.positive_int, default=5, help="--video: else the strongest few")
    args = train.parse(ap, argv)
    ckpt_path = args.out / "finetune.pt" if args.checkpoint is None else args.checkpoint
    ckpt = train.load_checkpoint(ckpt_path, "finetune")
    pretrained = pretraining(args, ckpt, ckpt_path)  # checked before anything is translated or written
    # the tokenizer the model was trained with, not one rebuilt here; --video writes no split's files
    setup = train.setup(args, config=ckpt["config"], stage=None if args.video else "evaluate",
                      tokenizer_state=ckpt["tokenizer"], splits=() if args.video else (args.split,))
    net = train.build(setup, "translation")
    train.load_weights(net, ckpt["model"])
    if args.video:
        pixels, fps = analysis.read_video(args.video)
        name = args.video.stem if args.video.is_file() else args.video.name
        batch, keep = analysis.video_batch(pixels, name, setup)
        hyp = train.translate(net, [batch], setup.tok, setup.device, args.beams, args.max_new_tokens)[0][0]
        print(f"translation: {hyp}")
        if pretrained:
            analysis.show_glosses(setup, pretrained, batch, pixels[keep], keep, fps, hyp)
        return {"translation": hyp}
    hyps, refs = train.translate(net, train.loader(setup, args.split, train=False), setup.tok, setup.device,
                                 args.beams, args.max_new_tokens)
    for kind, lines in (("hyp", hyps), ("ref", refs)):
        data.atomic_write(args.out / f"{args.split}.{kind}.txt",
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
    if pretrained:  # the video and segment levels (analysis.py)
        result |= analysis.measure_split(setup, args.split, pretrained)
    return result


if __name__ == "__main__":
    main()
