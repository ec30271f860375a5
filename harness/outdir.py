"""The run's folder (--out): one writer at a time, and no run written over without being asked.

Each script owns its files in --out: pretrain.py the folder pretrain/ and pretrain.last.pt (and the tokenizer
files and TensorBoard logs), finetune.py the folder finetune/ and finetune-stage{1,2}.last.pt, evaluate.py
<split>.{hyp,ref}.txt.
A script that finds its files refuses to start unless told to --resume or --overwrite; starting over, or
continuing, moves the files of the later stages (made from the old weights) into <out>/replaced-<time>/."""
import fcntl
import glob
import os
import shutil
import stat
import sys
import time
from pathlib import Path

from corpora import files

STAGES = ("pretrain", "finetune", "evaluate")  # each stage's files are made from the previous stage's
OWNED = {"pretrain": ("pretrain", "pretrain.last.pt"),   # the kept weights first: a folder (harness/hf_folder.py)
         "finetune": ("finetune", "finetune-stage1.last.pt", "finetune-stage2.last.pt"),
         "evaluate": ("{split}.hyp.txt", "{split}.ref.txt"),
         "video": ("{name}.glosses.png",)}  # tools/analysis.py --video, made from the fine-tuned weights
SCRIPT = {"pretrain": "pretrain.py", "finetune": "finetune.py", "evaluate": "evaluate.py",
          "video": "tools/analysis.py --video"}
# made by a stage but no reason to refuse: moved aside with the stage's files when it starts over
DERIVED = {"pretrain": ("tokenizer.json", "spm.model", "mbart-tokenizer", "events.out.tfevents.*")}
# the files of a kept-weights folder (harness/hf_folder.py's CONFIG, TRAINING, WEIGHTS), by which one is known
KEPT_FILES = ("config.json", "training.json", "model.safetensors")
_locks = {}  # folder -> open lock file, held until the process ends (or release())
_pending = {}  # folder -> (stage, why, files): what claim will move aside once commit() is called


def check_out(out: Path, root: Path = None, video: Path = None):
    """--out is a folder (or not there yet), neither the dataset root nor inside it (the dataset is only read), nor
    the --video folder or inside it (the picture would become one of its frames), nor a run's kept weights
    (<run>/pretrain, <run>/finetune) or inside them (which their run replaces whole). Checked before anything is
    written."""
    out = Path(out)
    if os.path.lexists(out) and not out.is_dir():
        kind = "a symbolic link to nothing" if os.path.islink(out) else "a file"
        raise SystemExit(f"--out '{out}' exists and is not a folder ({kind}): pass a folder (a new one is made); "
                         "nothing was written")
    where = out.resolve()
    for flag, folder in (("dataset root", root), ("--video folder", video)):
        if folder is None or not Path(folder).is_dir():
            continue
        folder = Path(folder).resolve()
        if where == folder or folder in where.parents:
            how = "is" if where == folder else "is inside"
            raise SystemExit(f"--out '{out}' {how} the {flag} '{folder}', which is only read: pass another --out "
                             "(nothing was written)")
    for folder in (where, *where.parents):
        if all((folder / name).is_file() for name in KEPT_FILES):
            how = "is" if where == folder else "is inside"
            raise SystemExit(f"--out '{out}' {how} the kept weights '{folder}' of a run (its "
                             f"{', '.join(KEPT_FILES)}), which that run replaces whole: pass another --out (nothing "
                             "was written)")


def lock(out: Path):
    """An exclusive lock on <out>/.lock (fcntl.flock; the kernel drops it when the process ends, however it ends).
    A second run into the same folder is refused; the same process may take it again."""
    out = Path(out).resolve()
    if out in _locks:
        return
    out.mkdir(parents=True, exist_ok=True)
    try:  # O_NOFOLLOW: a link planted at .lock is refused, never followed to the file it names
        fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as e:
        raise SystemExit(f"'{out / '.lock'}' cannot be this run's lock file ({e.strerror}"
                         + (f"; a symbolic link to '{os.readlink(out / '.lock')}'" if os.path.islink(out / ".lock")
                            else "") + "): remove it; nothing was written") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise SystemExit(f"'{out / '.lock'}' is not a regular file: remove it; nothing was written")
    f = os.fdopen(fd, "a+")
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


def claim(out: Path, stage: str, resume: bool, overwrite: bool, split: str = None, name: str = None):
    """Lock --out for `stage`, then: its own files there and neither --resume nor --overwrite: refuse, naming
    the folder, the files and the ways on; --overwrite: move its files and those of the later stages aside;
    --resume: keep its files, move the later stages' aside (they were made from weights that change now); but
    --resume beside kept weights (pretrain/, finetune/) without a *.last.pt to continue from: refuse.
    Nothing moves before commit(out): a --resume is first checked against its last state (checkpoint.py)."""
    out = Path(out)
    written = OWNED[stage] + DERIVED.get(stage, ()) + (("cache",) if stage == "pretrain" else ())
    fields = dict(split=split or "*", name=glob.escape(name) if name else "*")
    for pattern in written:  # before anything is written: a link would be followed, or refused only at the end
        pattern = pattern.format(**fields)
        for p in out.glob(pattern) if glob.has_magic(pattern) else [out / pattern]:
            files.refuse_link(p)
    lock(out)
    for kept in (OWNED["pretrain"][0], OWNED["finetune"][0]):  # a replacement killed between its two renames
        files.restore_old(out / kept)
    own = _existing(out, OWNED[stage], split=split or "*", name=glob.escape(name) if name else "*")
    if own and not resume and not overwrite:
        ways = ("continue it with --resume, " if stage in ("pretrain", "finetune") else "") + \
               "write to another folder with --out DIR, or start over with --overwrite (the old files are moved " \
               f"to '{out}/replaced-<time>/')"
        raise SystemExit(f"'{out}' already holds {SCRIPT[stage]}'s files ({', '.join(p.name for p in own)}) of a "
                         f"finished or interrupted run; nothing was changed. To go on: {ways}.")
    kept, states = OWNED[stage][0], OWNED[stage][1:]
    if resume and stage != "evaluate" and (out / kept).exists() and not any((out / s).exists() for s in states):
        # a fresh start here would replace the kept weights with epoch 1's
        raise SystemExit(f"--resume: '{out}' holds {kept} but not {' or '.join(states)}, the state --resume "
                         f"continues from, so there is nothing to resume; nothing was changed. To go on: start over "
                         f"with --overwrite ({kept} is moved to '{out}/replaced-<time>/'), or write to another folder "
                         "with --out DIR.")
    later = STAGES[STAGES.index(stage) + 1:] + ("video",) if stage in STAGES[:2] else ()
    moved = [p for s in later for p in _existing(out, OWNED[s], split="*", name="*")]
    if not resume:
        moved += own + _existing(out, DERIVED.get(stage, ()))
    _pending[out.resolve()] = (stage, "continuing" if resume else "starting over", moved)


def commit(out: Path):
    """The moves that claim(out) decided, done once every check that can refuse the run has passed."""
    out = Path(out)
    stage, why, moved = _pending.pop(out.resolve(), (None, None, []))
    if moved:
        dest = out / time.strftime("replaced-%Y%m%d-%H%M%S")
        while dest.exists():
            dest = dest.with_name(dest.name + "+")
        dest.mkdir()
        for p in moved:
            shutil.move(p, dest / p.name)
        print(f"{stage}: {why}; moved the earlier files {', '.join(p.name for p in moved)} to '{dest}'", flush=True)

