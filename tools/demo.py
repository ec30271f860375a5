"""The whole method on the generated corpus, end to end, in CPU minutes: build data/synthetic once, pre-train
(§3.2), fine-tune in two stages (§3.3), evaluate (§4.1), then retrieval and localisation (tools/analysis.py).
Each stage is the same main() that `python pretrain.py ...` runs, with the demo's short schedule.

    python -m tools.demo                    # runs/synthetic-tiny/, started over if it exists
    python -m tools.demo --setting synthetic-en --out runs/demo-en
"""
import argparse
from pathlib import Path

import evaluate
import finetune
import pretrain
from harness import outdir
from tools import analysis, synthetic

# The demo's schedule on the tiny preset: shorter than the paper's 100 + 100 + 200 epochs, with a higher peak lr
SCHEDULE = ["--lr", "1e-3", "--warmup-epochs", "1"]
PRETRAIN = ["--epochs", "6"]
FINETUNE = ["--stage1-epochs", "1", "--stage2-epochs", "14"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setting", default="synthetic", choices=sorted(synthetic.SETTINGS), help="the corpus")
    ap.add_argument("--out", type=Path, help="the run's folder (default: runs/<setting>-tiny)")
    args = ap.parse_args(argv)
    synthetic.build_setting(args.setting)                      # data/<setting>, once
    out = args.out or Path("runs") / f"{args.setting}-tiny"
    common = ["--data", args.setting, "--out", str(out)]
    pretrain.main(common + PRETRAIN + SCHEDULE + ["--overwrite"])
    finetune.main(common + FINETUNE + SCHEDULE + ["--overwrite"])
    result = evaluate.main(common + ["--overwrite"])
    result |= analysis.main(common + ["--split", "test"])
    outdir.release()
    return result


if __name__ == "__main__":
    main()
