"""A corpus at a real dataset's size and shape, for measuring what the work before the first step, the check and
the pack cost at that size (docs/fullsize.md). Frames are a few distinct images hard-linked into every frame
folder, and How2Sign's clips a few distinct mp4s hard-linked (what is measured there is the number of files);
--frame-size 210x260 and --clip-size 1280x720 give the releases' pixel sizes, for the pack's frames/s.

    python -m tools.fullsize --dataset phoenix14t --root DIR [--annotations DIR] [--fraction 0.1] [--frame-size WxH]
    python -m tools.fullsize --dataset how2sign   --root DIR [--fraction 0.1] [--clip-size WxH] [--clip-frames N]
    python -m tools.fullsize --dataset csl-daily  --root DIR [--fraction 0.1] [--frame-size WxH]

Sizes: PHOENIX14T 7,096/519/642 videos, 16..475 frames (mean 117 in train); How2Sign 31,165/1,741/2,357 realigned
rows of which 31,048/1,739/2,343 have a clip; CSL-Daily 18,401/1,077/1,176 videos. --annotations: a folder with
PHOENIX14T's PHOENIX-2014-T.<split>.corpus.csv (real names and sentences) and optionally frame_counts.tsv (split,
name, num_frames, with a header: real frame counts); without them names, sentences and counts are drawn (a gamma
distribution with PHOENIX14T's mean and range). CSL-Daily's frame counts are drawn with mean 120 in 30..400 (an
assumption: about 23 h at 30 fps over 20,654 videos gives about 122). Sentences are drawn from small word lists.
"""
import argparse
import csv
import io
import math
import multiprocessing
import os
import pickle
import random
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

import data
from corpora import csl_daily as csl_layout, how2sign as how2sign_layout

SPLITS = ("train", "dev", "test")
PHOENIX_N = {"train": 7096, "dev": 519, "test": 642}
HOW2SIGN_ROWS = {"train": 31165, "dev": 1741, "test": 2357}
HOW2SIGN_CLIPS = {"train": 31048, "dev": 1739, "test": 2343}
HOW2SIGN_SPLIT = {"train": "train", "dev": "val", "test": "test"}
CSL_N = {"train": 18401, "dev": 1077, "test": 1176}
LINKS_PER_FILE = 50_000  # ext4 allows 65,000 hard links to one inode

# ----------------------------------------------------------------------------------------------
# drawn text (used where no real annotations are given)

DE_WORDS = ("morgen heute nacht tag regen schnee sonne wolken wind gewitter nebel frost grad norden süden osten "
            "westen küste bergen alpen deutschland bayern himmel schauer temperaturen wetter freundlich kalt warm "
            "mild kühl sonnig trocken nass stürmisch schwach mäßig frisch kräftig weht zieht fällt gibt scheint "
            "bleibt steigen sinken aufziehen montag dienstag mittwoch donnerstag freitag samstag sonntag januar "
            "februar märz april mai juni juli august september oktober november dezember am im in der die das "
            "und mit bei auf von zu es auch noch dann später vormittag nachmittag abend region teilen vereinzelt "
            "örtlich").split()
EN_WORDS = ("hi today we are going to show you how make a simple cake with flour sugar eggs butter then put it in "
            "the oven bake for thirty minutes now take your brush paint wall carefully first second step next "
            "hold ball throw catch run fast slow guitar play chord finger string hand left right turn wheel car "
            "engine oil change check water garden plant seed grow soil tree cut branch fish hook line boat swim "
            "dog train sit stay good very really just also so because when if this that these those my our "
            "their important little big small easy hard nice great beautiful").split()
ZH_WORDS = ("我 你 他 她 我们 今天 明天 昨天 早上 晚上 去 来 吃 喝 看 买 学校 医院 商店 公园 家 朋友 老师 学生 "
            "妈妈 爸爸 饭 水 茶 书 电影 工作 学习 喜欢 想 要 可以 很 不 没有 在 和 的 了 吗 天气 冷 热 下雨 "
            "地铁 公交车 坐 走 快 慢 多少 钱 一 两 三 个 点 时候 什么 哪里 为什么 谢谢 对不起 请").split()


def drawn_sentence(rng, words, lo, hi, sep=" "):
    return sep.join(rng.choice(words) for _ in range(rng.randint(lo, hi)))


def drawn_counts(rng, n, mean, lo, hi):
    """n frame counts from a gamma distribution with this mean (shape 4), clipped to [lo, hi]; the extremes are set
    once each so that the range is the real one."""
    counts = np.clip(np.round(np.random.default_rng(rng.randint(0, 2**31)).gamma(4.0, mean / 4.0, n)), lo, hi)
    counts = counts.astype(int).tolist()
    if n >= 2:
        counts[0], counts[1] = lo, hi
    return counts


def take(items: list, fraction: float, rng) -> list:
    """A seeded sample of round(len * fraction) items (at least 1), in their original order."""
    if fraction >= 1:
        return list(items)
    k = max(1, round(len(items) * fraction))
    keep = sorted(rng.sample(range(len(items)), k))
    return [items[i] for i in keep]


# ----------------------------------------------------------------------------------------------
# frames and clips: a few distinct files, hard-linked


def image_bytes(k: int, size: tuple, fmt: str) -> bytes:
    """A distinct small image (width, height) as PNG or JPEG bytes: a smooth gradient with a moving blob, so that
    a real-size frame compresses like a video frame rather than like noise."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (0.3 + 0.05 * k) * w, (0.4 + 0.03 * k) * h
    blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (0.12 * max(w, h)) ** 2))
    img = np.stack([120 + 80 * blob, 90 + 60 * y / max(h, 1), 140 - 50 * x / max(w, 1) + 30 * blob], -1)
    buf = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG"
                                                                                 else {"compress_level": 1}))
    return buf.getvalue()


def write_pool(folder: Path, n: int, size: tuple, suffix: str) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    fmt = "PNG" if suffix == ".png" else "JPEG"
    paths = []
    for k in range(n):
        p = folder / f"f{k}{suffix}"
        p.write_bytes(image_bytes(k, size, fmt))
        paths.append(str(p))
    return paths


def _link_frames(job):
    """One worker's share: frame folders [(folder, n_frames)], each frame a hard link to one of a fresh pool of
    distinct images (fresh per job, so that no file gets near ext4's link limit)."""
    videos, pool_dir, size, suffix, pattern, first = job
    total = sum(n for _, n in videos)
    pool = write_pool(Path(pool_dir), max(4, math.ceil(total / LINKS_PER_FILE)), size, suffix)
    link, k = os.link, 0
    for folder, n in videos:
        os.makedirs(folder, exist_ok=True)
        for t in range(n):
            link(pool[k % len(pool)], os.path.join(folder, pattern % (t + first)))
            k += 1
    return total


def link_all(videos: list, root: Path, size: tuple, suffix: str, pattern: str, first: int, workers: int) -> int:
    """Every frame folder of `videos` [(folder, n)], in parallel chunks; the pools are removed afterwards."""
    pools = root / ".pool"
    chunk = max(1, math.ceil(len(videos) / (workers * 8)))
    jobs = [(videos[i:i + chunk], str(pools / f"c{i}"), size, suffix, pattern, first)
            for i in range(0, len(videos), chunk)]
    with multiprocessing.Pool(workers) as pool:
        total = sum(pool.imap_unordered(_link_frames, jobs))
    shutil.rmtree(pools)
    return total


def parse_size(text: str) -> tuple:
    w, h = text.lower().split("x")
    return int(w), int(h)


# ----------------------------------------------------------------------------------------------
# the three layouts


def phoenix14t(out: Path, fraction: float, annotations: Path, size: tuple, workers: int, rng) -> dict:
    """<out>/annotations/manual/PHOENIX-2014-T.<split>.corpus.csv and
    <out>/features/fullFrame-210x260px/<split>/<name>/images0001.png ..."""
    manual = data.annotation_path(out, "train").parent
    manual.mkdir(parents=True)
    counts, table = {}, Path(annotations or ".") / "frame_counts.tsv"
    if annotations and table.is_file():
        for line in table.read_text(encoding="utf-8").splitlines()[1:]:
            split, name, n = line.split("\t")
            counts[(split, name)] = int(n)
    videos, summary = [], {}
    for split in SPLITS:
        if annotations:
            lines = (Path(annotations) / f"PHOENIX-2014-T.{split}.corpus.csv").read_text(encoding="utf-8")
            header, *rows = lines.rstrip("\n").split("\n")
            rows = take(rows, fraction, rng)
            names = [r.split("|", 1)[0] for r in rows]
            missing = [name for name in names if (split, name) not in counts]  # drawn (no rng use when none is)
            drawn = dict(zip(missing, drawn_counts(rng, len(missing), 117, 16, 475) if missing else []))
            ns = [counts.get((split, name)) or drawn[name] for name in names]
        else:
            header = "name|video|start|end|speaker|orth|translation"
            k = max(1, round(PHOENIX_N[split] * fraction)) if fraction < 1 else PHOENIX_N[split]
            names = [f"{split}_{i:05d}_tagesschau-{i % 7}" for i in range(k)]
            rows = [f"{n}|{n}/1/*.png|-1|-1|Signer{i % 9 + 1:02d}|X|{drawn_sentence(rng, DE_WORDS, 5, 24)}"
                    for i, n in enumerate(names)]
            ns = drawn_counts(rng, k, 117, 16, 475)
        data.annotation_path(out, split).write_text(header + "\n" + "\n".join(rows) + "\n",
                                                                    encoding="utf-8")
        frames = out / data.FRAME_DIR / split
        videos += [(str(frames / name), n) for name, n in zip(names, ns)]
        summary[split] = {"videos": len(names), "frames": sum(ns)}
    summary["frames_written"] = link_all(videos, out, size, ".png", "images%04d.png", 1, workers)
    return summary


def write_mp4(path: Path, n_frames: int, size: tuple, k: int, fps: int = 24):
    import av
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for t in range(n_frames):
            frame = np.full((size[1], size[0], 3), (37 * (k + t)) % 256, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _link_clips(job):
    names, folder, pool_dir, size, n_frames = job
    pool = Path(pool_dir)
    pool.mkdir(parents=True, exist_ok=True)
    sources = []
    for k in range(max(4, math.ceil(len(names) / LINKS_PER_FILE))):
        p = pool / f"c{k}.mp4"
        write_mp4(p, n_frames, size, k)
        sources.append(str(p))
    for i, name in enumerate(names):
        os.link(sources[i % len(sources)], os.path.join(folder, name + ".mp4"))
    return len(names)


def how2sign(out: Path, fraction: float, size: tuple, clip_frames: int, workers: int, rng) -> dict:
    """<out>/sentence_level/<s>/text/en/raw_text/re_aligned/how2sign_realigned_<s>.csv (tab-separated, 7 columns)
    and <out>/sentence_level/<s>/rgb_front/raw_videos/<SENTENCE_NAME>.mp4, s = train, val, test."""
    jobs, summary = [], {}
    for split in SPLITS:
        s = HOW2SIGN_SPLIT[split]
        n_rows = HOW2SIGN_ROWS[split] if fraction >= 1 else max(1, round(HOW2SIGN_ROWS[split] * fraction))
        n_missing = HOW2SIGN_ROWS[split] - HOW2SIGN_CLIPS[split]
        n_missing = n_missing if fraction >= 1 else round(n_missing * fraction)
        table, clips = how2sign_layout.split_file(out, split), out / "sentence_level" / s / "rgb_front" / "raw_videos"
        table.parent.mkdir(parents=True)
        clips.mkdir(parents=True)
        names, missing = [], set(rng.sample(range(n_rows), n_missing))
        with open(table, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(("VIDEO_ID", "VIDEO_NAME", "SENTENCE_ID", "SENTENCE_NAME", "START_REALIGNED", "END_REALIGNED",
                        "SENTENCE"))
            start = 0.0
            for i in range(n_rows):
                vid = f"-{split[:2]}{i // 12:08d}"  # 11 characters, about 12 sentences per source video
                name = f"{vid}_{i % 12}-1-rgb_front"
                start = 0.0 if i % 12 == 0 else start
                end = start + rng.uniform(1.5, 12.0)
                sentence = drawn_sentence(rng, EN_WORDS, 4, 30)
                sentence = sentence[0].upper() + sentence[1:] + "."
                w.writerow((vid, f"{vid}-1-rgb_front", f"{vid}_{i % 12}", name, f"{start:.2f}", f"{end:.2f}",
                            sentence))
                start = end + rng.uniform(0.2, 2.0)
                if i not in missing:
                    names.append(name)
        chunk = max(1, math.ceil(len(names) / (workers * 4)))
        jobs += [(names[i:i + chunk], str(clips), str(out / ".pool" / f"{s}{i}"), size, clip_frames)
                 for i in range(0, len(names), chunk)]
        summary[split] = {"rows": n_rows, "clips": len(names)}
    with multiprocessing.Pool(workers) as pool:
        summary["clips_written"] = sum(pool.imap_unordered(_link_clips, jobs))
    shutil.rmtree(out / ".pool")
    return summary


def csl_daily(out: Path, fraction: float, size: tuple, workers: int, rng) -> dict:
    """<out>/sentence/frames_512x512/<name>/000000.jpg ..., <out>/sentence_label/csl2020ct_v2.pkl (`info`: one
    dict per video) and <out>/sentence_label/split_1.txt (name|split, with a header)."""
    labels = (out / csl_layout.LABELS).parent
    labels.mkdir(parents=True)
    info, lines, videos, summary = [], ["name|split"], [], {}
    frames = out / csl_layout.FRAME_DIRS[0]
    for split in SPLITS:
        k = CSL_N[split] if fraction >= 1 else max(1, round(CSL_N[split] * fraction))
        ns = drawn_counts(rng, k, 120, 30, 400)
        for n in ns:
            name = f"S{len(info):06d}_P{len(info) % 10:04d}_T00"
            words = [rng.choice(ZH_WORDS) for _ in range(rng.randint(3, 9))]
            info.append({"name": name, "length": n, "label_gloss": words, "label_char": list("".join(words)),
                         "label_word": words, "signer": len(info) % 10, "time": 0})
            lines.append(f"{name}|{split}")
            videos.append((str(frames / name), n))
        summary[split] = {"videos": k, "frames": sum(ns)}
    maps = {key: sorted({x for d in info for x in d[f"label_{key}"]}) for key in ("gloss", "char", "word")}
    body = lines[1:]  # shuffled: the release's split file is not grouped by split
    rng.shuffle(body)
    with open(out / csl_layout.LABELS, "wb") as f:
        pickle.dump({"info": info, **{f"{key}_map": v for key, v in maps.items()}}, f)
    (out / csl_layout.SPLIT_FILE).write_text("\n".join([lines[0]] + body) + "\n", encoding="utf-8")
    summary["frames_written"] = link_all(videos, out, size, ".jpg", "%06d.jpg", 0, workers)
    return summary


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=["phoenix14t", "how2sign", "csl-daily"])
    ap.add_argument("--root", type=Path, required=True, help="the corpus root to build (must not exist)")
    ap.add_argument("--fraction", type=float, default=1.0, help="build this share of each split (e.g. 0.1)")
    ap.add_argument("--annotations", type=Path, help="PHOENIX14T: a folder with the real corpus CSVs and "
                    "optionally frame_counts.tsv (split, name, num_frames)")
    ap.add_argument("--frame-size", default="8x8", help="frame images, WIDTHxHEIGHT (PHOENIX14T's are 210x260)")
    ap.add_argument("--clip-size", default="16x16", help="How2Sign's clips, WIDTHxHEIGHT (real: 1280x720)")
    ap.add_argument("--clip-frames", type=int, default=8, help="How2Sign: frames per clip")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.root.exists():
        ap.error(f"{args.root} exists: remove it or pass another --root")
    rng = random.Random(args.seed)
    start = time.perf_counter()
    if args.dataset == "phoenix14t":
        summary = phoenix14t(args.root, args.fraction, args.annotations, parse_size(args.frame_size), args.workers,
                             rng)
    elif args.dataset == "how2sign":
        summary = how2sign(args.root, args.fraction, parse_size(args.clip_size), args.clip_frames, args.workers, rng)
    else:
        summary = csl_daily(args.root, args.fraction, parse_size(args.frame_size), args.workers, rng)
    print(f"{args.dataset} x{args.fraction} in {args.root}: {summary} ({time.perf_counter() - start:.1f} s)")
    return summary


if __name__ == "__main__":
    main()
