"""The model card (README.md) of a kept-weights folder (harness/hf_folder.py): the Hub's YAML front matter
(language, the training data's licence, datasets, metrics, tags), what the weights are and how they were made,
and the evaluation table, which evaluate.py adds per split."""
import json
import re

# the datasets the project reads: (name, the licence of the data the weights learnt from, as the Hub spells it)
DATASETS = {"phoenix14t": ("RWTH-PHOENIX-Weather 2014 T", "cc-by-nc-sa-3.0"),
            "how2sign": ("How2Sign", "cc-by-nc-4.0"),
            "csl-daily": ("CSL-Daily", "other"),   # released for research under the authors' agreement
            "custom": ("videos of the user's own (custom layout)", "other"),
            "synthetic": ("the project's synthetic corpus (tools/synthetic.py)", "other")}
EVALUATION = "## Evaluation"
PAPER = "Hierarchical Feature Alignment for Gloss-Free Sign Language Translation"


def model_card(config: dict, training: dict, dataset: str) -> str:
    """The card of a folder being written: front matter and body from its config.json and training.json;
    `dataset` a key of DATASETS (checkpoint.dataset_of)."""
    name, licence = DATASETS.get(dataset, DATASETS["custom"])
    kind, metric = config["kind"], training["metric"]
    front = ["---", "language:", f"- {config['lang']}", f"license: {licence}"]
    if licence == "other":
        front += [f"license_name: {dataset}"]
    front += ["datasets:", f"- {dataset}", "metrics:", "- bleu", "- rouge", "tags:", "- sign-language-translation",
              "- gloss-free", "- video", "- pytorch", "- safetensors", "---", ""]
    what = "pre-trained encoders (§3.2: pseudo-gloss and sentence alignment)" if kind == "pretrain" else \
        "sign language translation model (§3.3: video to text)"
    bases = [f"| {b} | {e['hub_id'] or (e['folder'] and 'local folder ' + e['folder']) or 'seeded random weights'} "
             f"| `{e['sha256'][:16]}` |" for b, e in config["bases"].items()]
    body = [f"# {config['preset']} preset, {kind}: {name}", "",
            f"The {what} of \"{PAPER}\", trained on {name} ({config['lang']}) with the {config['preset']} preset. "
            f"Kept after epoch {training['epoch']} for its {metric['name']}: {metric['value']:.4g}.", "",
            "Load it and translate a clip as docs/checkpoints.md shows (`python evaluate.py --checkpoint FOLDER`, "
            "`python -m tools.analysis --checkpoint FOLDER --video clip.mp4`).", "",
            "## Bases", "",
            "The frozen weights are " + ("in this folder (standalone)." if config["standalone"] else
                                         "not in this folder: they are loaded from the bases below and checked "
                                         "against the sha256 of their frozen weights."), "",
            "| base | weights | sha256 of the frozen weights |", "|---|---|---|", *bases, "",
            "## Training", "", "The flags that fixed the result (`training.json`):", "", "```",
            json.dumps(training["flags"], indent=1, ensure_ascii=False), "```", ""]
    if kind == "finetune":
        body += [EVALUATION, "", "Not evaluated yet: `python evaluate.py --checkpoint FOLDER --split test` adds its "
                 "table here.", ""]
    return "\n".join(front + body)


def with_evaluation(card: str, split: str, table: str) -> str:
    """The card with evaluate.py's table of `split` in its evaluation section (replacing the split's older one)."""
    head, _, tail = card.partition(EVALUATION)
    tables = dict(re.findall(r"### (\w+)\n\n```\n(.*?)```\n", tail, flags=re.S))
    tables[split] = table.rstrip("\n") + "\n"
    section = [EVALUATION, ""] + [f"### {s}\n\n```\n{t}```\n" for s, t in sorted(tables.items())]
    return head.rstrip("\n") + "\n\n" + "\n".join(section)
