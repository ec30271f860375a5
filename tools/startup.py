"""What a script costs before its first step (docs/fullsize.md): runs pretrain.py, finetune.py or evaluate.py
unchanged up to the first call of data.prepare (every training loop and translation makes it on the first batch
the loader gives), then stops, and prints a JSON line: seconds to that step, peak memory of the main process and
of each loader worker (VmHWM and Pss), and the calls and inclusive seconds of the start-up functions.

    python -m tools.startup pretrain.py --data ROOT --preset tiny --out OUT --overwrite [--steps N]

--steps N: go on to the N-th step and also report the frames/s of steps 2..N (one epoch's share, projected).
"""
import functools
import json
import os
import resource
import runpy
import sys
import time

import data
import pseudogloss
import tokenizer
from corpora import check, decode
from harness import run

TIMED = ((data, ("read_split", "present_splits")), (check, ("check_videos", "video_problem")),
         (decode, ("frame_files",)), (run, ("setup", "build", "loader")),
         (tokenizer, ("load_or_build_tokenizer",)),
         (pseudogloss, ("build_pseudoglosses", "extract", "_skipgram_model")))


def timed(module, name, stats: dict):
    """Wraps module.name to count its calls and sum its inclusive seconds (a call inside itself counts once)."""
    fn, entry, depth = getattr(module, name), stats.setdefault(f"{module.__name__}.{name}", [0, 0.0]), [0]

    @functools.wraps(fn)
    def wrapper(*a, **k):
        entry[0] += 1
        depth[0] += 1
        start = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            depth[0] -= 1
            if depth[0] == 0:
                entry[1] += time.perf_counter() - start
    setattr(module, name, wrapper)


def workers_memory() -> list:
    """VmHWM and Pss (MiB) of this process's children: the loader's workers."""
    out = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as f:
            pids = [int(p) for p in f.read().split()]
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    pss = next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
            except (OSError, StopIteration):
                continue
            out.append({"pid": pid, "vmhwm_mib": round(hwm / 1024, 1), "pss_mib": round(pss / 1024, 1)})
    return out


def measure(script: str, argv: list, steps: int = 1) -> dict:
    """Runs `script` with `argv` until its `steps`-th step, then ends the process after printing the report."""
    t0, stats, seen = time.perf_counter(), {}, {"steps": 0, "frames": 0}
    for module, names in TIMED:
        for name in names:
            timed(module, name, stats)
    prepare = data.prepare

    def step(batch, *a, **k):
        seen["steps"] += 1
        if seen["steps"] == 1:
            seen.update(first=time.perf_counter() - t0, workers=workers_memory(),
                        maxrss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        else:
            seen["frames"] += int(batch["frame_mask"].sum())
        if seen["steps"] < steps:
            return prepare(batch, *a, **k)
        later = time.perf_counter() - t0 - seen["first"]
        report = {"script": script, "seconds_to_first_step": round(seen["first"], 2),
                  "main_maxrss_mib": round(seen["maxrss"], 1), "workers": seen["workers"],
                  "calls": {n: {"calls": c, "seconds": round(s, 2)} for n, (c, s) in stats.items() if c},
                  "steps": steps, "frames_per_s_after_first": round(seen["frames"] / later, 1) if steps > 1 else None}
        print(json.dumps(report), flush=True)
        for w in workers_memory():  # this process's own children, the loader's workers
            os.kill(w["pid"], 9)
        os._exit(0)
    data.prepare = step
    sys.argv = [script, *argv]
    runpy.run_path(script, run_name="__main__")
    raise SystemExit(f"{script} ended before its step {steps}")


if __name__ == "__main__":
    args = sys.argv[1:]
    n = int(args.pop(args.index("--steps") + 1)) if "--steps" in args else 1
    if "--steps" in args:
        args.remove("--steps")
    measure(args[0], args[1:], n)
