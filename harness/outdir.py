"""The run's folder (--out): one writer at a time, and no run written over without being asked.

Each script owns its files in --out: pretrain.py the folder pretrain/ and pretrain.last.pt (and the tokenizer
files and TensorBoard logs), finetune.py the folder finetune/ and finetune-stage{1,2}.last.pt, evaluate.py
<split>.{hyp,ref}.txt.
A script that finds its files refuses to start unless told to --resume or --overwrite; starting over, or
continuing, moves the files of the later stages (made from the old weights) into <out>/replaced-<time>/."""
import fcntl
import os
import shutil
import sys
import time
from pathlib import Path

STAGES = ("pretrain", "finetune", "evaluate")  # each stage's files are made from the previous stage's
OWNED = {"pretrain": ("pretrain", "pretrain.last.pt"),   # the kept weights first: a folder (harness/hf_folder.py)
         "finetune": ("finetune", "finetune-stage1.last.pt", "finetune-stage2.last.pt"),
         "evaluate": ("{split}.hyp.txt", "{split}.ref.txt")}
# made by a stage but no reason to refuse: moved aside with the stage's files when it starts over
DERIVED = {"pretrain": ("tokenizer.json", "spm.model", "mbart-tokenizer", "events.out.tfevents.*")}
_locks = {}  # folder -> open lock file, held until the process ends (or release())


def lock(out: Path):
    """An exclusive lock on <out>/.lock (fcntl.flock; the kernel drops it when the process ends, however it ends).
    A second run into the same folder is refused; the same process may take it again."""
    out = Path(out).resolve()
    if out in _locks:
        return
    out.mkdir(parents=True, exist_ok=True)
    f = open(out / ".lock", "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise SystemExit(f"'{out}' is in use by another run ({holder}): wait until it ends, or write to another --out")
    f.truncate(0)
    f.write(f"pid {os.getpid()}: {' '.join(sys.argv)}\n")
    f.flush()
    _locks[out] = f


def release(out: Path = None):
    """Give up the lock on `out` (every lock if None): for callers that run several scripts' main() in one process."""
    for folder in [Path(out).resolve()] if out else list(_locks):
        if folder in _locks:
            _locks.pop(folder).close()


def _existing(out: Path, patterns, **fields) -> list[Path]:
    return sorted({p for pattern in patterns for p in out.glob(pattern.format(**fields))})


def claim(out: Path, stage: str, resume: bool, overwrite: bool, split: str = None):
    """Lock --out for `stage`, then: its own files there and neither --resume nor --overwrite: refuse, naming
    the folder, the files and the ways on; --overwrite: move its files and those of the later stages aside;
    --resume: keep its files, move the later stages' aside (they were made from weights that change now); but
    --resume beside kept weights (pretrain/, finetune/) without a *.last.pt to continue from: refuse."""
    out = Path(out)
    lock(out)
    own = _existing(out, OWNED[stage], split=split or "*")
    if own and not resume and not overwrite:
        ways = ("continue it with --resume, " if stage != "evaluate" else "") + \
               "write to another folder with --out DIR, or start over with --overwrite (the old files are moved " \
               f"to '{out}/replaced-<time>/')"
        raise SystemExit(f"'{out}' already holds {stage}.py's files ({', '.join(p.name for p in own)}) of a finished "
                         f"or interrupted run; nothing was changed. To go on: {ways}.")
    kept, states = OWNED[stage][0], OWNED[stage][1:]
    if resume and stage != "evaluate" and (out / kept).exists() and not any((out / s).exists() for s in states):
        # a fresh start here would replace the kept weights with epoch 1's
        raise SystemExit(f"--resume: '{out}' holds {kept} but not {' or '.join(states)}, the state --resume "
                         f"continues from, so there is nothing to resume; nothing was changed. To go on: start over "
                         f"with --overwrite ({kept} is moved to '{out}/replaced-<time>/'), or write to another folder "
                         "with --out DIR.")
    later = [s for s in STAGES[STAGES.index(stage) + 1:]]
    moved = [p for s in later for p in _existing(out, OWNED[s], split="*")]
    if not resume:
        moved += own + _existing(out, DERIVED.get(stage, ()))
    if moved:
        dest = out / time.strftime("replaced-%Y%m%d-%H%M%S")
        while dest.exists():
            dest = dest.with_name(dest.name + "+")
        dest.mkdir()
        for p in moved:
            shutil.move(p, dest / p.name)
        why = "continuing" if resume else "starting over"
        print(f"{stage}: {why}; moved the earlier files {', '.join(p.name for p in moved)} to '{dest}'", flush=True)

