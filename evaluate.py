"""Evaluation (paper §4.1): beam-search translation of a split, BLEU-1..4 and ROUGE-L as Table 1 reports them;
with the run's pre-training checkpoint also the levels below translation (analysis.py): retrieval at the
video level and, on the synthetic corpus, where the segment level finds each pseudo-gloss.

    python evaluate.py --data synthetic --split test        # reads <out>/finetune.pt, writes <out>/test.{hyp,ref}.txt
    python evaluate.py --data synthetic --video clip.mp4    # one video of your own (a file, or a folder of frames)
"""
from pathlib import Path

import sacrebleu

import analysis
import data
import runs
import train


# How each dataset's papers score translations (issue N): PHOENIX14T (de) and How2Sign (en) with sacrebleu's
# default 13a tokenisation on the cased text and ROUGE-L over whitespace words; CSL-Daily (zh) at character
# level, sacrebleu's "zh" tokenisation (every CJK character a token) and ROUGE-L over characters.
LANGS = ("de", "en", "zh")


def _check_lang(lang: str):
    """A clear error for a language the scoring does not know."""
    if lang not in LANGS:
        raise ValueError(f"language '{lang}': expected one of {', '.join(LANGS)}")


def scoring_note(lang: str = "de") -> str:
    """One line that says how `scores(..., lang)` scores, for the printed table."""
    _check_lang(lang)
    if lang == "zh":
        return ("scoring (zh): sacrebleu BLEU-1..4, tokenize='zh' (one token per Chinese character), cased; ROUGE-L "
                "(beta 1.2) over characters, whitespace ignored; against the raw reference text")
    return (f"scoring ({lang}): sacrebleu BLEU-1..4, tokenize='13a', cased; ROUGE-L (beta 1.2) over whitespace "
            "words; against the raw reference text")


def bleu(hypotheses, references, lang: str = "de") -> dict:
    """Corpus BLEU-1..4 (sacrebleu; BLEU-n = brevity penalty x geometric mean of the 1..n-gram precisions);
    lang 'zh' tokenises by character (sacrebleu's 'zh'), 'de' and 'en' with 13a on the cased text."""
    _check_lang(lang)
    tokenize = "zh" if lang == "zh" else "13a"
    return {f"bleu{n}": sacrebleu.BLEU(max_ngram_order=n, tokenize=tokenize).corpus_score(
        hypotheses, [references]).score for n in range(1, 5)}


def lcs(a: list, b: list) -> int:
    """Length of the longest common subsequence of two token lists (dynamic programming, one row at a time)."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag, row[0] = 0, 0
        for j, y in enumerate(b, 1):
            prev_diag, row[j] = row[j], prev_diag + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_tokens(text: str, lang: str = "de") -> list:
    """ROUGE-L's units: whitespace words (de, en), or every non-space character (zh; rouge_score's tokenizer
    would drop Chinese characters altogether, so CSL-Daily's character-level ROUGE-L is written out here)."""
    return [c for c in text if not c.isspace()] if lang == "zh" else text.split()


def rouge_l(hypotheses, references, lang: str = "de", beta: float = 1.2) -> float:
    """ROUGE-L as SLT papers report it: sentence-level LCS F-score with beta 1.2, averaged, x100; over characters
    for lang 'zh'."""
    _check_lang(lang)
    total = 0.0
    for hyp, ref in zip(hypotheses, references, strict=True):
        h, r = rouge_tokens(hyp, lang), rouge_tokens(ref, lang)
        n = lcs(h, r)
        if n:
            p, rec = n / len(h), n / len(r)
            total += (1 + beta ** 2) * p * rec / (rec + beta ** 2 * p)
    return 100 * total / max(len(references), 1)


def scores(hypotheses, references, lang: str = "de") -> dict:
    """BLEU-1..4 and ROUGE-L of one corpus, scored as `lang`'s dataset is (scoring_note)."""
    return {**bleu(hypotheses, references, lang), "rouge": rouge_l(hypotheses, references, lang)}


def authors_references(references, tok, max_tokens: int = None) -> list[str]:
    """The references as the authors' code scores against them: each sentence encoded with the run's (trimmed)
    tokenizer, cut as in training, and decoded with special tokens skipped (`models/Finetune_Model.py` L111,
    L180, through `dataset/slt_dataset.py` L133-134), so characters the kept pieces cannot spell, which become
    <unk>, vanish."""
    max_tokens = max_tokens or train.MAX_TEXT_TOKENS
    return [tok.decode(tok.encode(r)[:max_tokens - 2]) for r in references]  # room for `</s> de_DE`


def authors_scores(hypotheses, references, tok) -> dict:
    """Scores as the authors' code computes them (`models/Finetune_Model.py` L133-135, L181-182, L198-199):
    " ." appended to every hypothesis and to every reference decoded through the tokenizer (authors_references)."""
    return scores([h + " ." for h in hypotheses], [r + " ." for r in authors_references(references, tok)])


def dev_bleu(hypotheses, references, tok, scoring: str = "raw", lang: str = "de") -> dict:
    """BLEU-1..4 under one of evaluate.py's conventions, for finetune.py's choice of the kept weights: "raw" (the
    corpus text), "period" (" ." appended to both sides) or "authors" (authors_scores)."""
    if scoring not in ("raw", "period", "authors"):
        raise ValueError(f"scoring {scoring!r}: expected raw, period or authors")
    if scoring == "authors":
        references = authors_references(references, tok)
    if scoring != "raw":
        hypotheses, references = [h + " ." for h in hypotheses], [r + " ." for r in references]
    return bleu(hypotheses, references, lang)


def table_row(name: str, s: dict) -> str:
    """One row in the layout of the paper's Table 1."""
    return f"{name:<28}{s['bleu1']:>8.2f}{s['bleu2']:>8.2f}{s['bleu3']:>8.2f}{s['bleu4']:>8.2f}{s['rouge']:>8.2f}"


TABLE_HEADER = f"{'':<28}{'BLEU-1':>8}{'BLEU-2':>8}{'BLEU-3':>8}{'BLEU-4':>8}{'ROUGE':>8}"


def pretraining(args, ckpt: dict, ckpt_path: Path):
    """The pre-training checkpoint for the levels below translation (retrieval, localisation, --video's
    pseudo-glosses): --pretrained, else the pretrain.pt beside the fine-tuned checkpoint. Used only if it is
    the one that model was fine-tuned from (the sha256 finetune.py records) with its tokenizer; otherwise the
    default is not used and the output says why, and --pretrained is an error. None: not used."""
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
        return path
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
    result = scores(hyps, refs, setup.lang)
    print(scoring_note(setup.lang))
    print(TABLE_HEADER)
    print(table_row(f"{args.split} (raw)", result))
    if setup.lang == "de":  # PHOENIX14T's conventions, for comparison with its papers (README)
        print(table_row(f"{args.split} (' .' appended)", scores([h + " ." for h in hyps], [r + " ." for r in refs])))
        print(table_row(f"{args.split} (authors' scoring)", authors_scores(hyps, refs, setup.tok)))
    print(f"wrote {args.out / f'{args.split}.hyp.txt'} and {args.out / f'{args.split}.ref.txt'}")
    if pretrained:  # the video and segment levels (analysis.py)
        result |= analysis.measure_split(setup, args.split, pretrained)
    return result


if __name__ == "__main__":
    main()
