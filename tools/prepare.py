"""The one-off preparation of a dataset: pack its frames, check every video that training would read, build the
pseudo-glosses that pretrain.py then finds in its shared cache (harness/pseudogloss_cache.py).

    python -m tools.prepare --pack --data phoenix14t [--splits train dev test]   # <root>/packed/<split>/
    python -m tools.prepare --check --data how2sign [--full]
    python -m tools.prepare --pseudoglosses --data phoenix14t [--lang de]
"""
import argparse
import errno
import os
import time

import numpy as np

import data
import pseudogloss
from corpora import check, pack
from harness import cli, pseudogloss_cache


def main():
    """The one-off packing step, `python -m tools.prepare --pack --data {phoenix14t,how2sign,csl-daily,synthetic,PATH}
    [--splits ...]`, and the check of every video (`--check [--full]`)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", action="store_true", help="pack the splits' frames into <root>/packed/<split>/")
    ap.add_argument("--check", action="store_true", help="check every video of the splits as training does first "
                    "(frame headers, PNG checksums, a video file's first frame) and list the problems")
    ap.add_argument("--full", action="store_true", help="with --check: decode every frame of every video")
    ap.add_argument("--pseudoglosses", action="store_true", help="build the pseudo-glosses with pretrain.py's "
                    "defaults into its shared cache, so that its start-up skips the tagging and skip-gram training")
    ap.add_argument("--fasttext", type=cli.fasttext_file, help="with --pseudoglosses: as pretrain.py's (default: "
                    "cc, fastText's cc.<lang>.300 vectors, fetched; skipgram for a synthetic corpus)")
    ap.add_argument("--lang", choices=data.LANGS, help="with --pseudoglosses: the translations' language "
                    "(default: the layout's)")
    ap.add_argument("--data", default="phoenix14t", help="phoenix14t, how2sign, csl-daily, a synthetic corpus, or a "
                    "folder in one of the layouts (see above)")
    ap.add_argument("--splits", nargs="+", default=list(data.SPLITS), choices=data.SPLITS, help="which splits")
    ap.add_argument("--packed-dir", help="where the packs go (default: <root>/packed); one sub-folder per split")
    ap.add_argument("--quality", type=int, default=93, help="JPEG quality")
    ap.add_argument("--resize", type=int, help="store frames resized to this square size, 0 = as shipped (default: "
                    "256, the paper's resize before the 224 crop, so the loader skips it; as shipped for synthetic)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="encoding processes")
    args = ap.parse_args()
    if not (args.pack or args.check or args.pseudoglosses):
        ap.error("nothing to do: pass --pack, --check or --pseudoglosses")
    try:
        root = data.resolve_root(args.data)
    except FileNotFoundError as e:
        raise SystemExit(str(e)) from None
    rows = data.read_splits(root, args.splits)
    if args.check:
        start = time.perf_counter()
        problems = check.check_videos(root, rows, full=args.full, first_frame=True, verified=args.splits)
        print(f"checked {'/'.join(args.splits)} under '{root}' in {time.perf_counter() - start:.1f} s: "
              + (f"{len(problems)} problem(s)\n  " + "\n  ".join(problems) if problems else "no problems"))
        if problems:
            raise SystemExit(1)
    if args.pack:
        if args.resize is None:  # synthetic frames are 64x64, read at 37 by the tiny preset
            args.resize = 0 if args.data.startswith("synthetic") else 256
        for split in args.splits:
            pack_one(root, split, rows[split], args)
    if args.pseudoglosses:
        start = time.perf_counter()
        lang = data.dataset_language(root, args.lang)
        vectors = args.fasttext or cli.default_fasttext(cli.default_preset(args.data))
        pg = pseudogloss_cache.pseudoglosses(root, fasttext_path=pseudogloss.fasttext_model_file(vectors, lang),
                                             lang=lang, shared=pseudogloss_cache.shared_dir())
        print(f"{len(pg.vocab)} pseudo-glosses in '{pseudogloss_cache.shared_dir()}' in "
              f"{time.perf_counter() - start:.1f} s")


def pack_one(root, split, rows, args):
    """`python -m tools.prepare --pack` for one split (`rows`, data.read_splits'), saying what it did; its
    videos are checked first (a pack holds one frame size per video), nothing is written before."""
    index = pack.packed_path(root, split, args.packed_dir) / "index.json"
    where = pack.destination_problem(root, split, rows, args.packed_dir)
    if where:
        raise SystemExit(f"cannot pack {split}: {where}; nothing was written")
    problems = check.check_videos(root, {split: rows})
    if problems:
        raise SystemExit(f"cannot pack {split}: {len(problems)} problem(s); nothing was written:\n  "
                         + "\n  ".join(problems))
    before = index.stat().st_mtime_ns if index.is_file() else None
    damage = pack.pack_problems(index.parent) if before is not None else ""
    if damage:
        print(f"{split}: the pack in '{index.parent}' is damaged ({damage}): rebuilding it")
    start = time.perf_counter()
    try:
        folder = pack.pack_split(root, split, rows, args.packed_dir, args.quality, args.resize or None, args.workers)
    except OSError as e:
        if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise
        raise SystemExit(f"cannot write the pack of {split} into '{index.parent.parent}' ({e.strerror}): pass "
                         "--packed-dir DIR, and the same --packed-dir to training") from None
    seconds = time.perf_counter() - start
    n, size = len(np.load(folder / "offsets.npy")) - 1, (folder / "frames.bin").stat().st_size
    if index.stat().st_mtime_ns == before:
        print(f"{split}: already packed, {n} frames, {size / 2**20:.1f} MiB in '{folder}'")
    else:
        print(f"{split}: packed {n} frames, {size / 2**20:.1f} MiB in '{folder}' in {seconds:.1f} s "
              f"({n / seconds:.0f} frames/s)")



if __name__ == "__main__":
    main()
