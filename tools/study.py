"""The ablation study (DESIGN.md "Evaluation"): which part of the pre-training helps, on the synthetic corpus.
Four variants x seeds, each pre-trained (§3.2), fine-tuned (§3.3) and evaluated (§4.1) on the test split:

    full             L_align + 1 * L_psp (eq. 5, the paper's method)
    lambda0          L_align only (no pseudo-gloss loss, the paper's Table 2 question)
    no-align         L_psp only (pseudo-glosses only, no video-sentence alignment)
    no-pretrain      fine-tuning from scratch (no pre-training at all)

    python -m tools.study                        # 4 variants x 3 seeds, ~2 CPU minutes a run; writes <out>/study.md
    python -m tools.study --corpus hard          # the harder generator setting (synthetic.SETTINGS)
    python -m tools.study --seeds 0 --pretrain-epochs 1 --stage1-epochs 1 --stage2-epochs 1   # a dry run

Runs are kept in <out>/<variant>-seed<k>/ with their result.json: an interrupted study continues where it stopped.
"""
import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np

import evaluate
import finetune
import pretrain
from tools import analysis, synthetic

VARIANTS = {  # name: (what the table calls it, pretrain.py flags, or None for no pre-training)
    "full": ("full method (lambda 1)", ["--lambda-psp", "1"]),
    "lambda0": ("no pseudo-gloss loss (lambda 0)", ["--lambda-psp", "0"]),
    "no-align": ("no alignment loss (pseudo-glosses only)", ["--lambda-align", "0"]),
    "no-pretrain": ("no pre-training (fine-tuning from scratch)", None),
}
METRICS = {"bleu4": "BLEU-4", "r1_v2t": "R@1 video-to-text", "r1_t2v": "R@1 text-to-video",
           "localisation": "localisation accuracy"}


def run_one(args, variant: str, seed: int) -> dict:
    """One variant and seed, end to end; its scores on the test split and the minutes it took."""
    out = args.out / f"{variant}-seed{seed}"
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    if out.exists():  # an interrupted run: start it again, from nothing
        shutil.rmtree(out)
    common = ["--data", args.data, "--preset", "tiny", "--out", str(out), "--workers", str(args.workers)]
    schedule = ["--seed", str(seed), "--lr", "1e-3", "--warmup-epochs", str(args.warmup_epochs)]
    start = time.time()
    flags = VARIANTS[variant][1]
    if flags is not None:
        pretrain.main(common + schedule + flags + ["--epochs", str(args.pretrain_epochs)])
    finetune.main(common + schedule + ["--stage1-epochs", str(args.stage1_epochs), "--stage2-epochs",
                                       str(args.stage2_epochs)] + ([] if flags else ["--pretrained", "none"]))
    scoring = common + ["--split", "test", "--beams", str(args.beams), "--max-new-tokens", str(args.max_new_tokens)]
    result = evaluate.main(scoring) | analysis.main(scoring)
    result["minutes"] = (time.time() - start) / 60
    done.write_text(json.dumps(result, indent=1))
    return result


def cell(values: list) -> str:
    """mean +- sample standard deviation over seeds; '-' where the variant has no such measurement."""
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f}" if len(values) > 1 else f"{values[0]:.1f}"


def table(results: dict, seeds: list) -> str:
    """The markdown table: one row per variant, mean +- std over seeds of each metric."""
    lines = ["| variant | " + " | ".join(METRICS.values()) + " | chance (localisation) | minutes a run |",
             "|---" * (len(METRICS) + 3) + "|"]
    for variant, per_seed in results.items():
        row = [cell([r.get(k) for r in per_seed]) for k in METRICS]
        row += [cell([r.get("chance") for r in per_seed]), cell([r["minutes"] for r in per_seed])]
        lines.append(f"| {VARIANTS[variant][0]} | " + " | ".join(row) + " |")
    return "\n".join(lines) + f"\n\n(test split, mean ± std over seeds {', '.join(map(str, seeds))}; R@1 and " \
        "localisation come from the pre-training checkpoint, which the no-pre-training variant has not)\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default="synthetic", choices=["synthetic", "hard"], help="the generator's setting")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one run of each variant per seed")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="which variants")
    ap.add_argument("--pretrain-epochs", type=int, default=6, help="pre-training epochs of each run")
    ap.add_argument("--stage1-epochs", type=int, default=1, help="fine-tuning stage 1 epochs of each run")
    ap.add_argument("--stage2-epochs", type=int, default=12, help="fine-tuning stage 2 epochs of each run")
    ap.add_argument("--warmup-epochs", type=int, default=1, help="warm-up epochs of each schedule")
    ap.add_argument("--beams", type=int, default=4, help="of the test split's translation (§4.2)")
    ap.add_argument("--max-new-tokens", type=int, default=150, help="of the test split's translation")
    ap.add_argument("--workers", type=int, default=2, help="data loading processes")
    ap.add_argument("--out", type=Path, help="default: runs/study-<corpus>")
    args = ap.parse_args(argv)
    args.data = "synthetic" if args.corpus == "synthetic" else "synthetic-hard"
    args.out = args.out or Path("runs") / f"study-{args.corpus}"
    args.out.mkdir(parents=True, exist_ok=True)
    synthetic.build_setting(args.data)  # once, under data/<name>; --data finds it there
    results = {v: [run_one(args, v, seed) for seed in args.seeds] for v in args.variants}
    text = (f"Study on the {args.data} corpus: pre-training {args.pretrain_epochs} epochs, fine-tuning "
            f"{args.stage1_epochs} + {args.stage2_epochs} epochs, lr 1e-3, warm-up {args.warmup_epochs}\n\n"
            + table(results, args.seeds))
    (args.out / "study.md").write_text(text)
    print(text + f"\nwrote {args.out / 'study.md'}")
    return results


if __name__ == "__main__":
    main()

