"""Evaluation (paper §4.1): beam-search translation of a split, scored with BLEU-1..4 and ROUGE-L as Table 1
reports them.

    python evaluate.py --data synthetic --split test    # reads <out>/finetune/, writes <out>/test.{hyp,ref}.txt
    python evaluate.py --data phoenix14t --checkpoint user/name         # a folder published on the Hub

The levels below translation (retrieval, where each pseudo-gloss is found, a video of your own) are measured by
`python -m tools.analysis`.
"""
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import ModelCard

import metrics
import model
from corpora import files
from harness import card, checkpoint, cli, hf_folder, run
from harness.cli import value

@dataclass(frozen=True)
class Recipe:
    """Every value of evaluation with its source (the paper gives none: the authors' code, GitHub elsobhano/MLLM,
    branch psp-dino, commit 73cc504). Each is a flag of the same name (--max-new-tokens)."""
    beams: int = value(4, "the authors' models/Finetune_Model.py L212 @73cc504", "beam width")
    max_new_tokens: int = value(150, "the authors' models/Finetune_Model.py L212 @73cc504", "longest translation, in "
                                "tokens")
    batch_size: int = value(16, "§4.2's training batch; it does not change the result", "videos per batch")


TABLE_HEADER = f"{'':<28}{'BLEU-1':>8}{'BLEU-2':>8}{'BLEU-3':>8}{'BLEU-4':>8}{'ROUGE':>8}"


def table_row(name: str, s: dict) -> str:
    """One row in the layout of the paper's Table 1."""
    return f"{name:<28}{s['bleu1']:>8.2f}{s['bleu2']:>8.2f}{s['bleu3']:>8.2f}{s['bleu4']:>8.2f}{s['rouge']:>8.2f}"


def flags(doc: str = __doc__):
    ap = cli.recipe_flags(cli.data_flags(doc), Recipe)
    ap.add_argument("--split", default="test", choices=["dev", "test"], help="which split to translate")
    ap.add_argument("--checkpoint", help="the fine-tuned weights: finetune.py's folder (default: <out>/finetune), "
                    "or a hub id user/name (docs/checkpoints.md)")
    return ap


def translation_model(args, kept: hf_folder.Kept, stage: str = None, splits=()):
    """The fine-tuned model of a folder (hf_folder.read), with the tokenizer it was trained with (not one rebuilt
    here), on the run's device in eval mode; `stage` claims --out (harness.outdir). -> (setup, model)"""
    setup = run.setup(args, config=kept.config["model"], stage=stage, tok=kept.tok, splits=splits)
    return setup, hf_folder.build(kept, "finetune", setup.device, args.dino, args.mbart)


def check_max_new_tokens(args, kept: hf_folder.Kept):
    """--max-new-tokens within the decoder's learned positions (the start token and the tokens before the last
    take one each), refused before anything is translated or written."""
    positions = kept.cfg.mbart_arch.get("max_position_embeddings", model.MBART_LARGE_CC25["max_position_embeddings"])
    if args.max_new_tokens > positions:
        raise SystemExit(f"--max-new-tokens {args.max_new_tokens}: the decoder of '{kept.path}' has "
                         f"{positions} positions (mbart_arch.max_position_embeddings), so a translation has at most "
                         f"{positions} tokens: pass --max-new-tokens {positions} or less; nothing was written")


def main(argv=None):
    args = cli.parse(flags(), argv, "evaluate")
    kept = hf_folder.read(args.checkpoint or args.out / "finetune", "finetune")
    check_max_new_tokens(args, kept)
    setup, net = translation_model(args, kept, stage="evaluate", splits=(args.split,))
    hyps, refs = run.translate(net, run.loader(setup, args.split, augment=False), setup.tok, setup.device,
                                 args.beams, args.max_new_tokens)                                  # §4.1
    for kind, lines in (("hyp", hyps), ("ref", refs)):
        files.atomic_write(args.out / f"{args.split}.{kind}.txt",
                           lambda tmp: tmp.write_text("".join(line + "\n" for line in lines)))
    scored = {"raw": metrics.scores(hyps, refs, setup.lang)}
    if setup.lang == "de":  # PHOENIX14T's conventions, for comparison with its papers (README)
        scored["period"] = metrics.scores([h + " ." for h in hyps], [r + " ." for r in refs])
        scored["authors"] = metrics.authors_scores(hyps, refs, setup.tok)
    table = [metrics.scoring_note(setup.lang), TABLE_HEADER]
    table += [table_row(f"{args.split} ({card.SCORINGS[k]})", s) for k, s in scored.items()]
    print("\n".join(table))
    print(f"wrote {args.out / f'{args.split}.hyp.txt'} and {args.out / f'{args.split}.ref.txt'}")
    evaluated = card.results(args.split, checkpoint.dataset_of(setup), scored,
                             metrics.signatures(hyps, refs, setup.lang))
    update_card(kept, args.out, args.split, evaluated)
    return scored["raw"]


def update_card(kept: hf_folder.Kept, out: Path, split: str, evaluated: list):
    """The model card of the evaluated folder written again from its data with `split`'s results (EvalResults,
    replacing the split's older ones; the other splits' are read back with ModelCard.load), when the folder is
    this run's (inside --out); a folder elsewhere (another run's, a download) is not written to."""
    path = kept.path / hf_folder.CARD
    if kept.path.resolve().parent != out.resolve() or path.is_symlink() or not path.is_file():
        print(f"the model card '{path}' is not updated: the folder is not in --out '{out}', or has no card")
        return
    try:
        old = ModelCard.load(path)
    except Exception as e:  # whatever huggingface_hub and yaml raise on a card edited by hand
        print(f"the model card '{path}' cannot be read ({type(e).__name__}: {str(e)[:160]}): it is written anew, "
              "without its earlier results")
        old = ModelCard("")
    dataset = card.dataset_of(old)
    results = [r for r in old.data.eval_results or [] if r.dataset_split != split] + evaluated
    text = card.model_card(kept.config, kept.training, dataset, results)
    files.atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(f"added the {split} results to the model card {path}")


if __name__ == "__main__":
    main()
