"""The model card (README.md) of a kept-weights folder (harness/hf_folder.py), built with huggingface_hub's own
classes: ModelCardData for the Hub's front matter (language, licence, library, bases, datasets, tags, and the
model-index of the evaluations, EvalResult), and a body saying what the weights are, their bases, the flags and
software that made them, and the evaluation tables. A card is always written whole from its data (config.json,
training.json, the evaluations), never edited by searching its text (DESIGN.md "Runs and checkpoints")."""
import json
import re

from huggingface_hub import EvalResult, ModelCard, ModelCardData

# the datasets the project reads: (name, the licence of the data the weights learnt from, as the Hub spells it)
DATASETS = {"phoenix14t": ("RWTH-PHOENIX-Weather 2014 T", "cc-by-nc-sa-3.0"),
            "how2sign": ("How2Sign", "cc-by-nc-4.0"),
            "csl-daily": ("CSL-Daily", "other"),   # released for research under the authors' agreement
            "custom": ("videos of the user's own (custom layout)", "other"),
            "synthetic": ("the project's synthetic corpus (tools/synthetic.py)", "other")}
PAPER = "Hierarchical Feature Alignment for Gloss-Free Sign Language Translation"
# the Hub's name for a model of plain PyTorch code; no pipeline_tag: the Hub has no video-to-text task, and
# "translation" is text to text (DESIGN.md "Runs and checkpoints")
LIBRARY = "pytorch"
TAGS = ["sign-language-translation", "gloss-free", "video", "pytorch", "safetensors"]
# evaluate.py's scorings (EvalResult.metric_args["scoring"]) and the columns of a table: (metric_type, n or None)
SCORINGS = {"raw": "raw", "period": "' .' appended", "authors": "authors' scoring"}
COLUMNS = [("bleu", 1), ("bleu", 2), ("bleu", 3), ("bleu", 4), ("rouge", None)]


def dataset_of(card: ModelCard) -> str:
    """The dataset key (DATASETS) a card was written for: its front matter's `datasets`."""
    names = card.data.datasets or []
    return names[0] if names and names[0] in DATASETS else "custom"


def results(split: str, dataset: str, scored: dict, configs: dict) -> list:
    """EvalResults of one split: `scored` scoring (SCORINGS) -> metrics.scores' dict (bleu1..4, rouge); `configs`
    metric type -> how it was scored (sacrebleu's signature for bleu)."""
    name = DATASETS.get(dataset, DATASETS["custom"])[0]
    out = []
    for scoring, s in scored.items():
        for kind, n in COLUMNS:
            label = f"BLEU-{n}" if n else "ROUGE-L"
            out.append(EvalResult(task_type="translation", task_name="Sign language translation",
                                  dataset_type=dataset, dataset_name=name, dataset_split=split, metric_type=kind,
                                  metric_value=round(float(s[f"bleu{n}" if n else "rouge"]), 2),
                                  metric_name=label if scoring == "raw" else f"{label} ({SCORINGS[scoring]})",
                                  metric_config=configs[kind], metric_args={"scoring": scoring} | (
                                      {"max_ngram_order": n} if n else {})))
    return out


def model_card(config: dict, training: dict, dataset: str, evaluations=()) -> str:
    """The card of a folder from its config.json, training.json, `dataset` (a key of DATASETS, checkpoint.dataset_of)
    and `evaluations` (EvalResults of `results`, evaluate.py's)."""
    dataset = dataset if dataset in DATASETS else "custom"
    name, licence = DATASETS[dataset]
    kind, preset = config["kind"], config["preset"]
    bases = [e["hub_id"] for e in config["bases"].values() if e["hub_id"]]
    data = ModelCardData(language=[config["lang"]], license=licence,
                         license_name=dataset if licence == "other" else None, library_name=LIBRARY,
                         base_model=bases or None, datasets=[dataset], metrics=["bleu", "rouge"], tags=TAGS,
                         model_name=f"hfa-slt-{dataset}-{preset}-{kind}" if evaluations else None,
                         eval_results=list(evaluations) or None)    # the model-index's name, only with results
    body = about(config, training, name) + evaluation(kind, list(evaluations))
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(body)))


def about(config: dict, training: dict, name: str) -> list:
    """The body's lines before the evaluation: what the weights are, their bases, the flags and the software."""
    kind, metric = config["kind"], training["metric"]
    what = "pre-trained encoders (§3.2: pseudo-gloss and sentence alignment)" if kind == "pretrain" else \
        "sign language translation model (§3.3: video to text)"
    bases = [f"| {b} | {e['hub_id'] or (e['folder'] and 'a local folder named ' + e['folder']) or 'seeded random'} "
             f"| `{e['sha256'][:16]}` |" for b, e in config["bases"].items()]
    local = [b for b, e in config["bases"].items() if not e["hub_id"] and e["folder"]]
    software = training.get("software", {})
    return [f"# {config['preset']} preset, {kind}: {name}", "",
            f"The {what} of \"{PAPER}\", trained on {name} ({config['lang']}) with the {config['preset']} preset. "
            f"Kept after epoch {training['epoch']} for its {metric['name']}: {metric['value']:.4g}.", "",
            "Load it with `harness.hf_folder.from_pretrained(FOLDER_OR_HUB_ID)`, or translate a clip as "
            "docs/checkpoints.md shows (`python evaluate.py --checkpoint FOLDER`, "
            "`python -m tools.analysis --checkpoint FOLDER --video clip.mp4`).", "",
            "## Bases", "",
            "The frozen weights are " + ("in this folder (standalone)." if config["standalone"] else
                                         "not in this folder: they are loaded from the bases below and checked "
                                         "against the sha256 of their frozen weights."), "",
            "| base | weights | sha256 of the frozen weights |", "|---|---|---|", *bases, "",
            *([f"Trained on local base folders ({', '.join(local)}), which the Hub cannot link as `base_model`: "
               "pass them with --dino/--mbart to load it.", ""] if local and not config["standalone"] else []),
            "## Training", "", "The flags that fixed the result (`training.json`; repeat the run with "
            "`--config FOLDER`):", "", *fenced(json.dumps(training["flags"], indent=1, ensure_ascii=False)), "",
            *(["The software that trained it:", "", *fenced(json.dumps(software, indent=1)), ""] if software else [])]


def evaluation(kind: str, evaluations: list) -> list:
    """The evaluation section: one table per split, a row per scoring, from the EvalResults."""
    if kind != "finetune":
        return []
    if not evaluations:
        return ["## Evaluation", "", "Not evaluated yet: `python evaluate.py --checkpoint FOLDER --split test` "
                "adds its results here and to the card's model-index.", ""]
    lines = ["## Evaluation", ""]
    for split in sorted({r.dataset_split for r in evaluations}):
        rows = [r for r in evaluations if r.dataset_split == split]
        configs = sorted({f"{r.metric_type}: {r.metric_config}" for r in rows})
        lines += [f"### {split}", "", "| scoring | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | ROUGE-L |",
                  "|---|---|---|---|---|---|"]
        for scoring in [s for s in SCORINGS if any(scoring_of(r) == s for r in rows)]:
            value = {(r.metric_type, (r.metric_args or {}).get("max_ngram_order")): r.metric_value for r in rows
                     if scoring_of(r) == scoring}
            lines.append(f"| {SCORINGS[scoring]} | " + " | ".join(f"{value[c]:.2f}" for c in COLUMNS) + " |")
        lines += ["", *(f"- {c}" for c in configs), ""]
    return lines


def scoring_of(result: EvalResult) -> str:
    return (result.metric_args or {}).get("scoring", "raw")


def fenced(text: str) -> list:
    """`text` as a code block whose fence is longer than any run of backticks in it (CommonMark)."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return [fence, text, fence]
