"""--config FILE: a run's flags from a file, so that a run can be repeated from its record
(DESIGN.md "Runs and checkpoints"). FILE is a kept folder (its training.json), a training.json, or a YAML or
JSON mapping of flags (`lr: 3.0e-4`, `batch-size: 16`, `packed: true`). Every value goes through the flag's own
argparse type and choices; unknown keys, wrong types and the record of another stage are refused naming the key,
before anything is read or written. The command line overrides the file (cli.parse)."""
import argparse
import json
from pathlib import Path

import yaml

RECORD = "training.json"   # the kept folder's record (harness/hf_folder.py TRAINING)
NOT_FLAGS = ("dataset",)   # what a record's flags hold besides flags: the dataset's fingerprint


def refuse(path, what: str):
    raise SystemExit(f"--config '{path}': {what}; nothing was read or written")


def read(spec, ap: argparse.ArgumentParser, stage: str) -> dict:
    """The flags FILE `spec` sets, as parsed values by flag name (dest), for the script of `stage` ('pretrain',
    'finetune', 'evaluate', 'analysis') whose parser is `ap`."""
    stage, path = stage or ap.prog, Path(spec)
    path = path / RECORD if path.is_dir() else path
    if not path.is_file():
        refuse(spec, f"no such file (a kept folder such as <out>/{stage}, its {RECORD}, or a YAML or JSON file "
                     "of flags)")
    try:
        text = path.read_text(encoding="utf-8")
        value = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as e:
        refuse(path, f"cannot be read as {'JSON' if path.suffix == '.json' else 'YAML'} "
                     f"({type(e).__name__}: {str(e)[:160]})")
    if not isinstance(value, dict):
        refuse(path, f"holds a {type(value).__name__}, not a mapping of flags to values")
    if isinstance(value.get("flags"), dict) and "kind" in value:    # a kept folder's training.json
        if value["kind"] != stage:
            refuse(path, f"key kind is {value['kind']!r}: the record of another stage, not of {stage}")
        recorded = value["flags"].get("dataset")
        value = {k: v for k, v in value["flags"].items() if k not in NOT_FLAGS}
    else:
        recorded = None
    options = {}
    for action in ap._actions:  # argparse keeps its flags only here
        if action.dest not in ("help", "config"):
            options |= {o.lstrip("-"): action for o in action.option_strings} | {action.dest: action}
    flags = {}
    for key, v in value.items():
        action = options.get(str(key).lstrip("-"))
        if action is None:
            names = sorted({a.option_strings[0] for a in options.values()})
            refuse(path, f"key {key!r} is not a flag of {stage} (its flags: {' '.join(names)})")
        flags[action.dest] = value_of(action, key, v, path)
    # the record names its dataset, not where it lies: run.setup checks that --data holds the same one
    return flags | ({"recorded_dataset": (str(path), recorded)} if recorded else {})


def value_of(action: argparse.Action, key, v, path):
    """`v` as the flag of `action` takes it on the command line: through its type and choices; a switch
    (store_true) takes true or false, a flag with no default null."""
    if action.nargs == 0:
        if not isinstance(v, bool):
            refuse(path, f"key {key!r} is {v!r}: the switch --{action.dest.replace('_', '-')} is true or false")
        return v
    if v is None and action.default is None:
        return None
    if v is None or isinstance(v, (bool, list, dict)):
        refuse(path, f"key {key!r} is {v!r}: expected one value as on the command line")
    try:
        parsed = action.type(str(v)) if action.type else str(v)
    except (argparse.ArgumentTypeError, TypeError, ValueError) as e:
        refuse(path, f"key {key!r}: {e}")
    if action.choices is not None and parsed not in action.choices:
        refuse(path, f"key {key!r} is {v!r}, not one of {', '.join(map(str, action.choices))}")
    return parsed
