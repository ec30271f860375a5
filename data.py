"""Sign language videos with their translations, read as the paper reads PHOENIX14T (§4.2; DESIGN.md "Data"),
from four layouts (detect_layout), each as released:

    phoenix14t  <root>/annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv
                (name|video|start|end|speaker|orth|translation)
                <root>/features/fullFrame-210x260px/{train,dev,test}/<name>/images0001.png ...           (German)
    how2sign    <root>/sentence_level/{train,val,test}/text/en/raw_text/re_aligned/how2sign_realigned_<split>.csv
                (tab-separated, CSV quoting: VIDEO_ID VIDEO_NAME SENTENCE_ID SENTENCE_NAME START_REALIGNED
                END_REALIGNED SENTENCE) and <root>/sentence_level/<split>/rgb_front/raw_videos/<SENTENCE_NAME>.mp4;
                `val` is read as dev; sentences without a clip (as in the release) are skipped and counted (English)
    csl-daily   <root>/sentence_label/csl2020ct_v2.pkl (a dict whose `info` lists {name, length, label_char,
                label_word, ...}), <root>/sentence_label/split_1.txt (name|split lines, header optional) and
                <root>/sentence/frames_512x512/<name>/*.jpg (or sentence_frames-512x512/frames_512x512/)  (Chinese)
    custom      <root>/{train,dev,test}.csv: header name|video|translation, '|'-separated, no quoting; video is a
                video file (.mp4 .webm .mov .avi .mkv) or a folder of frames (.png .jpg ...), relative to the
                CSV's folder; the language comes from --lang (dataset_language)

frames resized, cropped, augmented and normalised; video files decoded with PyAV, resized while decoding; and at
the end of the file the JPEG frame packs that make reading fast. `--data` names a dataset (resolve_root) or is a
root folder. A name or video in an annotation file is a name: it must resolve inside its split's folder.

    python data.py --pack --data phoenix14t [--splits train dev test]   # once: <root>/packed/<split>/, for packed=True
    python data.py --check --data how2sign [--full]                     # every video that training would read
"""

import argparse
import csv
import glob
import io
import json
import math
import multiprocessing
import os
import pickle
import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FRAME_DIR = Path("features") / "fullFrame-210x260px"
SPLITS = ("train", "dev", "test")
LANGS = ("de", "en", "zh")
LAYOUT_LANG = {"phoenix14t": "de", "how2sign": "en", "csl-daily": "zh"}
VIDEO_SUFFIXES = {".mp4", ".webm", ".avi", ".mov", ".mkv"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
# the generated corpora, built by `python synthetic.py --setting NAME` under data/NAME (synthetic.SETTINGS;
# synthetic-en in How2Sign's layout, synthetic-zh in CSL-Daily's)
SYNTHETIC = ("synthetic", "synthetic-hard", "synthetic-en", "synthetic-zh")
# --data names: an environment variable (None: none) and the default folder
NAMED_ROOTS = {"phoenix14t": ("PHOENIX14T_ROOT", "data/phoenix14t"), "how2sign": ("HOW2SIGN_ROOT", "data/how2sign"),
               "csl-daily": ("CSL_DAILY_ROOT", "data/csl-daily"),
               **{name: (None, f"data/{name}") for name in SYNTHETIC}}
HOW2SIGN_SPLIT = {"train": "train", "dev": "val", "test": "test"}
CSL_FRAME_DIRS = ("sentence/frames_512x512", "sentence_frames-512x512/frames_512x512", "sentence_frames-512x512")
CSL_LABELS = Path("sentence_label") / "csl2020ct_v2.pkl"
CSL_SPLIT_FILE = Path("sentence_label") / "split_1.txt"


def annotation_path(root, split) -> Path:
    """Where a split's official PHOENIX14T annotation CSV lives."""
    return Path(root) / "annotations" / "manual" / f"PHOENIX-2014-T.{split}.corpus.csv"


def how2sign_csv(root, split) -> Path:
    """How2Sign's realigned sentences of a split (our dev is its val)."""
    s = HOW2SIGN_SPLIT[split]
    return Path(root) / "sentence_level" / s / "text" / "en" / "raw_text" / "re_aligned" / f"how2sign_realigned_{s}.csv"


def how2sign_clips(root, split) -> Path:
    """The folder of a How2Sign split's sentence clips: rgb_front/raw_videos/ as the download script unzips them
    (rgb_front/ itself where the clips lie directly in it)."""
    front = Path(root) / "sentence_level" / HOW2SIGN_SPLIT[split] / "rgb_front"
    return front / "raw_videos" if (front / "raw_videos").is_dir() or not front.is_dir() else front


def csl_frames(root) -> Path:
    """CSL-Daily's frame folder under the spellings in use (the first that exists; else the release's)."""
    for rel in CSL_FRAME_DIRS:
        if (Path(root) / rel).is_dir():
            return Path(root) / rel
    return Path(root) / CSL_FRAME_DIRS[0]


def custom_csv(root, split) -> Path:
    """A split of the custom layout: <root>/<split>.csv."""
    return Path(root) / f"{split}.csv"


def resolve_root(data: str) -> Path:
    """The --data flag -> a dataset root: phoenix14t ($PHOENIX14T_ROOT or data/phoenix14t), how2sign ($HOW2SIGN_ROOT
    or data/how2sign), csl-daily ($CSL_DAILY_ROOT or data/csl-daily), a synthetic corpus (data/<name>, which
    synthetic.py builds) or a folder in one of the layouts (detect_layout)."""
    env, default = NAMED_ROOTS.get(data, (None, data))
    root = Path(os.environ.get(env, default) if env else default)
    if not root.is_dir():
        if data in NAMED_ROOTS and env is None:
            how = "generate it once with `python synthetic.py" + (f" --setting {data}`" if data != "synthetic" else "`")
        elif env:
            how = (f"set {env} to the folder holding the dataset as released (see data.py), or pass --data PATH "
                   "(or --data synthetic)")
        else:
            how = "pass a dataset folder (layouts: see data.py), or phoenix14t, how2sign, csl-daily, synthetic"
        raise FileNotFoundError(f"dataset root '{root}' (--data {data}) not found: {how}")
    return root


def ground_truth_path(root, split) -> Path:
    """Where a split's sign timings lie (synthetic corpora only, DESIGN.md "Synthetic corpus"): beside the
    annotations in PHOENIX14T's layout, at the root in How2Sign's and CSL-Daily's. A TSV with header name,
    pseudogloss, first, last; one row per sign, its first and last frame numbered from 1 in the video's frame
    order (images0001.png is 1; CSL-Daily's 000000.jpg and an mp4's first decoded frame are 1 too)."""
    manual = annotation_path(root, split)
    if manual.parent.is_dir():
        return manual.with_name(f"synthetic.{split}.signs.tsv")
    return Path(root) / f"synthetic.{split}.signs.tsv"


def read_ground_truth(root, split) -> dict:
    """The sign timings of a split: video name -> [(pseudo-gloss, first, last), ...] in sign order; {} when the
    corpus has none (PHOENIX14T)."""
    path = ground_truth_path(root, split)
    if not path.is_file():
        return {}
    spans = {}
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        name, gloss, first, last = line.split("\t")
        spans.setdefault(name, []).append((gloss, int(first), int(last)))
    return spans


def atomic_write(path: Path, write):
    """write(tmp) makes a file or a folder at a temporary name of its own (pid + random) beside `path`, which is
    then renamed to `path` (replacing what was there): never half a file or folder, and two writers never share
    a temporary. The one temp-and-rename of the project: checkpoints, caches, translations, packs, corpora.
    Temporaries that an earlier writer of `path` left when it was killed are removed first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{os.urandom(4).hex()}")
    old = path.with_name(f".{path.name}.old{os.getpid()}-{os.urandom(4).hex()}")
    try:
        write(tmp)
        if tmp.is_dir() and path.is_dir():  # a folder cannot be renamed over another: set the old one aside first
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def remove_stale_temporaries(path: Path):
    """Removes the temporaries .<name>.tmp<pid>-<hex> and .<name>.old<pid>-<hex> that atomic_write makes beside
    `path`, where their process has ended (killed before it could clean up); a writer still running elsewhere
    keeps its own."""
    path = Path(path)
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*"):
        match = re.fullmatch(rf"\.{re.escape(path.name)}\.(?:tmp|old)(\d+)-[0-9a-f]+", tmp.name)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # exists (another user's), or an id no process can have: leave it alone
    return True


def detect_layout(root) -> str:
    """Which layout a root folder holds: "phoenix14t" | "how2sign" | "csl-daily" | "custom"."""
    root = Path(root)
    if (root / "annotations" / "manual").is_dir():
        return "phoenix14t"
    if (root / "sentence_level").is_dir():
        return "how2sign"
    if (root / "sentence_label").is_dir():
        return "csl-daily"
    if any(custom_csv(root, s).is_file() for s in SPLITS):
        return "custom"
    raise FileNotFoundError(f"'{root}' holds no dataset in a known layout: looked for annotations/manual/ "
                            "(PHOENIX14T), sentence_level/ (How2Sign), sentence_label/ (CSL-Daily) and "
                            "train.csv, dev.csv, test.csv (name|video|translation; see data.py)")


def dataset_language(root, lang_flag: str = None) -> str:
    """The language of a dataset's translations: --lang when given, else the layout's (PHOENIX14T de, How2Sign en,
    CSL-Daily zh); the custom layout has none, so there --lang is required."""
    if lang_flag is not None:
        if lang_flag not in LANGS:
            raise ValueError(f"--lang {lang_flag}: unknown language, choose one of {', '.join(LANGS)}")
        return lang_flag
    layout = detect_layout(root)
    if layout not in LAYOUT_LANG:
        raise ValueError(f"'{root}' is a folder of your own videos (train.csv ...): say the language of its "
                         f"translations with --lang {{{','.join(LANGS)}}}")
    return LAYOUT_LANG[layout]


def split_file(root, split) -> Path:
    """The annotation file that a split is read from, in the root's layout (CSL-Daily: its split file)."""
    layout = detect_layout(root)
    return {"phoenix14t": annotation_path, "how2sign": how2sign_csv, "custom": custom_csv,
            "csl-daily": lambda r, s: Path(r) / CSL_SPLIT_FILE}[layout](root, split)


def present_splits(root) -> list[str]:
    """The splits whose annotation file exists."""
    return [s for s in SPLITS if split_file(root, s).is_file()]


def read_split(root, split) -> list[dict]:
    """The rows {name, translation, video} of a split in any layout, video the path of its frame folder or video
    file (checked to lie inside its split's folder; whether it exists is check_videos's). A malformed or duplicate
    row is an error naming the file and line."""
    if split not in SPLITS:
        raise ValueError(f"split '{split}': not one of {', '.join(SPLITS)}")
    layout = detect_layout(root)
    if layout == "phoenix14t":
        return _read_phoenix(Path(root), split)
    if layout == "how2sign":
        return _read_how2sign(Path(root), split)
    if layout == "csl-daily":
        return _read_csl_daily(Path(root), split)
    return _read_custom(Path(root), split)


# -----------------------------------------------------------------------------
# the readers of each layout


def read_text(path) -> str:
    """A UTF-8 text file (a leading byte-order mark dropped); bytes that are not UTF-8 are an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file '{path}' not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"'{path}', line {line}: not UTF-8 (byte 0x{raw[e.start]:02x}); "
                         "save the file as UTF-8") from None
    return text.removeprefix("\ufeff")


def read_table(path, delimiter: str, fields: tuple, quoting=csv.QUOTE_NONE) -> list[tuple]:
    """The rows of a CSV file with a header naming at least `fields`: (line number, row dict); a row with another
    number of fields than the header or an empty field of `fields` is an error naming the file and line."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""), delimiter=delimiter, quoting=quoting)
    if reader.fieldnames is None or not set(fields) <= set(reader.fieldnames):
        raise ValueError(f"'{path}' lacks the header naming {', '.join(fields)} (separated by {delimiter!r}); "
                         f"its first line is {reader.fieldnames}")
    rows, first = [], reader.line_num + 1
    for r in reader:
        where, start, first = f"'{path}', line {reader.line_num}", first, reader.line_num + 1
        if any("\n" in v or "\r" in v for v in r.values() if isinstance(v, str)):
            raise ValueError(f"'{path}', lines {start}-{reader.line_num} hold one row: a field runs over "
                             "several lines (a quote \" opening a field and never closed?)")
        if None in r or None in r.values():
            n = sum(v is not None for k, v in r.items() if k is not None) + len(r.get(None, []))
            raise ValueError(f"{where}: {n} fields where the header has {len(reader.fieldnames)} "
                             f"(fields are separated by {delimiter!r})")
        empty = [f for f in fields if not r[f].strip()]
        if empty:
            raise ValueError(f"{where}: empty {empty[0]}")
        rows.append((reader.line_num, r))
    return rows


def inside(base: Path, name: str, where: str) -> Path:
    """base / name, refused unless it stays inside base: a name from an annotation file is a name, never an
    absolute path or one that climbs out with '..' (checked on the text, so symlinked dataset folders still work)."""
    if not name or os.path.isabs(name) or name.startswith("~"):
        raise ValueError(f"{where}: '{name}' is not a name inside '{base}' (absolute or empty paths are refused)")
    rel = os.path.normpath(name)
    if rel == ".." or rel.startswith(".." + os.sep) or rel == ".":
        raise ValueError(f"{where}: '{name}' leads outside '{base}' (names may not climb out with '..')")
    return base / rel


def unique_rows(rows: list, path) -> list[dict]:
    """rows [(line, {name, ...})] -> the row dicts, refusing a name that two lines share (the second would
    silently take the first's place wherever videos are looked up by name)."""
    first = {}
    for line, row in rows:
        if row["name"] in first:
            raise ValueError(f"'{path}': video name '{row['name']}' appears twice, on lines {first[row['name']]} "
                             f"and {line}; names must be unique")
        first[row["name"]] = line
    return [row for _, row in rows]


def _read_phoenix(root: Path, split: str) -> list[dict]:
    path = annotation_path(root, split)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file '{path}' not found (split '{split}' of root '{root}')")
    frames = root / FRAME_DIR / split
    rows = [(line, {"name": r["name"], "translation": r["translation"],
                    "video": inside(frames, r["name"], f"'{path}', line {line}")})
            for line, r in read_table(path, "|", ("name", "translation"))]
    return unique_rows(rows, path)


def _read_custom(root: Path, split: str) -> list[dict]:
    path = custom_csv(root, split)
    rows = [(line, {"name": r["name"], "translation": r["translation"],
                    "video": inside(path.parent, r["video"], f"'{path}', line {line}")})
            for line, r in read_table(path, "|", ("name", "video", "translation"))]
    return unique_rows(rows, path)


_SKIPS_REPORTED = set()


def _read_how2sign(root: Path, split: str) -> list[dict]:
    """How2Sign's realigned CSV (tab-separated, standard quoting); rows whose clip the release lacks are skipped,
    and their number said once per file."""
    path, clips = how2sign_csv(root, split), how2sign_clips(root, split)
    rows, missing = [], 0
    for line, r in read_table(path, "\t", ("SENTENCE_NAME", "SENTENCE"), quoting=csv.QUOTE_MINIMAL):
        video = inside(clips, r["SENTENCE_NAME"] + ".mp4", f"'{path}', line {line}")
        if video.is_file():
            rows.append((line, {"name": r["SENTENCE_NAME"], "translation": r["SENTENCE"], "video": video}))
        else:
            missing += 1
    if missing and not rows:
        raise FileNotFoundError(f"'{path}': none of its {missing} sentences has its clip <SENTENCE_NAME>.mp4 in "
                                f"'{clips}' (download the rgb_front clips into it)")
    if missing and (path, missing) not in _SKIPS_REPORTED:
        _SKIPS_REPORTED.add((path, missing))
        print(f"How2Sign {split} ({HOW2SIGN_SPLIT[split]}): {missing} of {missing + len(rows)} sentences have no clip "
              f"in '{clips}' (as in the release): skipped", file=sys.stderr)
    return unique_rows(rows, path)


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only (dicts, lists, strings, numbers and numpy arrays): the label file is data, and a
    pickle that names any other class or function is refused instead of run."""
    ALLOWED = {("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, not plain data")
        return super().find_class(module, name)


def read_csl_labels(path) -> dict:
    """CSL-Daily's label pickle -> name -> translation (label_char joined: the field's translation target;
    label_word where an entry has no label_char); an entry's other fields are not read."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            labels = _PlainUnpickler(f).load()
    except FileNotFoundError:
        raise FileNotFoundError(f"CSL-Daily label file '{path}' not found") from None
    except Exception as e:  # a damaged or foreign pickle can fail in many ways
        raise ValueError(f"CSL-Daily label file '{path}' cannot be read: {e}") from None
    if not isinstance(labels, dict) or not isinstance(labels.get("info"), (list, tuple)):
        found = sorted(map(str, labels)) if isinstance(labels, dict) else type(labels).__name__
        raise ValueError(f"CSL-Daily label file '{path}' has no `info` list of videos (found {found})")
    out = {}
    for i, entry in enumerate(labels["info"]):
        where = f"CSL-Daily label file '{path}', info[{i}]"
        text = entry.get("label_char", entry.get("label_word")) if isinstance(entry, dict) else None
        if text is None or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ValueError(f"{where}: not a dict with name and label_char (or label_word)")
        text = text if isinstance(text, str) else "".join(map(str, text))
        if not text.strip():
            raise ValueError(f"{where} ('{entry['name']}'): empty translation")
        if entry["name"] in out:
            raise ValueError(f"{where}: video name '{entry['name']}' appears twice; names must be unique")
        out[entry["name"]] = text
    return out


def _read_csl_daily(root: Path, split: str) -> list[dict]:
    """CSL-Daily: the split file's names of `split` (header line optional) with their label_char from the pickle."""
    path, frames = root / CSL_SPLIT_FILE, csl_frames(root)
    labels = read_csl_labels(root / CSL_LABELS)
    rows = []
    for line, text in enumerate(read_text(path).splitlines(), 1):
        parts = [p.strip() for p in text.split("|")] if "|" in text else text.split()  # some copies: white space
        if not parts or (line == 1 and parts == ["name", "split"]):
            continue
        where = f"'{path}', line {line}"
        if len(parts) != 2 or not parts[0]:
            raise ValueError(f"{where}: '{text}' is not name|split")
        if parts[1] != split:
            continue
        if parts[0] not in labels:
            raise ValueError(f"{where}: video '{parts[0]}' is not in the label file '{root / CSL_LABELS}'")
        rows.append((line, {"name": parts[0], "translation": labels[parts[0]],
                            "video": inside(frames, parts[0], where)}))
    return unique_rows(rows, path)


# -----------------------------------------------------------------------------
# checks before training: every frame that will be read, cheaply


def check_videos(root, splits, packed=False, packed_dir=None, limit: int = 20, full: bool = False) -> list[str]:
    """Every video of `splits`, checked before training: a frame folder's every frame file by its header (an
    image of one size throughout), a video file by opening it and decoding its first frame; full=True decodes
    everything. With packed=True, its split's pack is intact and holds it. Returns the problems, at most `limit`
    listed and then a count of the rest."""
    problems = []
    for split in splits:
        rows = read_split(root, split)
        if packed:
            problems += _pack_check(root, split, packed_dir, [r["name"] for r in rows])
            continue
        missing_dirs = sorted({str(r["video"].parent) for r in rows if not r["video"].parent.is_dir()})
        problems += [f"folder '{d}' (where videos of {split} lie) is missing" for d in missing_dirs]
        rows = [r for r in rows if r["video"].parent.is_dir()]
        with ThreadPoolExecutor(8) as pool:  # mostly waiting for the disk: threads overlap the reads
            problems += [p for p in pool.map(lambda r: video_problem(r["video"], full), rows) if p]
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more"]
    return problems


def _pack_check(root, split, packed_dir, names) -> list[str]:
    """The problems of a split's pack: damaged, or lacking videos of the annotation file."""
    folder, command = packed_path(root, split, packed_dir), pack_command(root, split, packed_dir)
    damage = pack_problems(folder)
    if damage:
        return [f"frame pack '{folder}': {damage}; (re)build it with `{command}`"]
    packed_names = set(json.loads((folder / "index.json").read_text())["names"])
    return [f"video '{n}' is not in frame pack '{folder}' (packed from another annotation file?): "
            f"rebuild it with `{command}`" for n in names if n not in packed_names]


def video_problem(video: Path, full: bool = False) -> str:
    """What keeps a video (frame folder or video file) from being read ('' if nothing)."""
    if video.is_dir():
        files = frame_files(video)
        if not files:
            return f"video folder '{video}' has no images (frames: {', '.join(sorted(IMAGE_SUFFIXES))})"
        sizes = {}
        for f in files:
            try:
                sizes.setdefault(frame_size(f, full), f)
            except (OSError, ValueError, SyntaxError) as e:
                return f"frame '{f}' cannot be read: {e}"
        if len(sizes) > 1:
            shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes))
            example = list(sizes.values())[1]
            return f"video folder '{video}' mixes frame sizes (width x height) {shown}: e.g. '{example}'"
        return ""
    if not video.exists():
        return f"video '{video}' is missing"
    if video.suffix.lower() not in VIDEO_SUFFIXES:
        return f"video '{video}' is neither a folder of frames nor a video file ({', '.join(sorted(VIDEO_SUFFIXES))})"
    import av
    try:  # decoded but not converted: ~7 ms for a 1080p H.264 clip's first frame
        with av.open(str(video)) as container:
            if not container.streams.video:
                return f"video file '{video}' has no video stream"
            n = 0
            for _ in container.decode(container.streams.video[0]):
                n += 1
                if not full:
                    break
    except Exception as e:  # PyAV's errors (av.FFmpegError and others), a file that is not a video
        return f"video file '{video}' cannot be decoded: {e}"
    return "" if n else f"video file '{video}' holds no video frames"


# -----------------------------------------------------------------------------
# frames -> tensors (paper §4.2)


PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"


def frame_size(path, full: bool = False) -> tuple:
    """A frame file's (width, height) from its header (a PNG's first 24 bytes, read directly: several times faster
    than opening it with PIL); full=True decodes the whole image. An unreadable file raises."""
    if not full and Path(path).suffix.lower() == ".png":
        with open(path, "rb") as f:
            head = f.read(24)
        if len(head) == 24 and head.startswith(PNG_HEADER):
            return tuple(int.from_bytes(head[i:i + 4], "big") for i in (16, 20))
    with Image.open(path) as im:  # reads the header only, unless loaded
        if full:
            im.load()
        return im.size


def natural_key(path: Path) -> list:
    """Sort key: frame2.png before frame10.png."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)]


def frame_files(folder) -> list[Path]:
    """A frame folder's images in natural name order (PHOENIX14T's images0001.png ..., CSL-Daily's 000000.jpg ...)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)


def decoded_size(width: int, height: int, size=None, short_side: int = None) -> tuple:
    """The (width, height) a frame is decoded at: `size` exactly, or scaled down (aspect kept, never up) so that
    its shorter side is at most `short_side`, or as stored."""
    if size is not None:
        return tuple(size)
    if short_side and min(width, height) > short_side:
        scale = short_side / min(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def iter_video(path, size=None, short_side: int = None, stop: int = None):
    """A video file's frames (PyAV), each resized while decoding (decoded_size; swscale's area filter) to uint8
    [H, W, 3], so that memory follows the output size, not the file's; `stop`: at most that many frames. A file
    that cannot be decoded is an OSError naming it."""
    import av  # only video files need PyAV
    path = Path(path)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise OSError("no video stream")
            stream = container.streams.video[0]
            if stop is None:  # decoder threads pay off over a whole clip, not for a first frame
                stream.thread_type = "AUTO"
            for k, frame in enumerate(container.decode(stream)):
                if stop is not None and k >= stop:
                    return
                width, height = decoded_size(frame.width, frame.height, size, short_side)
                yield frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    except Exception as e:  # PyAV's errors (av.FFmpegError and others), a file that is not a video
        raise OSError(f"video file '{path}' cannot be decoded: {e}") from e


def video_fps(path) -> float:
    """A video file's average frame rate (None where the container does not say)."""
    import av
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
    return float(rate) if rate else None


def video_file_size(path) -> list:
    """A video file's stored frame size [height, width], from its stream's header (the authors' augmentation
    shifts and rotates in the frame's own pixels)."""
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [stream.codec_context.height, stream.codec_context.width]


def read_video(path, size=None, short_side: int = None) -> np.ndarray:
    """All frames of a video file or of a frame folder as uint8 [N, H, W, 3], each resized on reading
    (decoded_size), so that a long clip of large frames never sits in memory at its stored size."""
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        if not files:
            raise FileNotFoundError(f"video folder '{path}' has no images "
                                    f"(frames: {', '.join(sorted(IMAGE_SUFFIXES))})")
        return read_frames(files, size, short_side)
    frames = list(iter_video(path, size, short_side))
    if not frames:
        raise ValueError(f"video file '{path}': no video frames could be decoded")
    return np.stack(frames)


def read_frames(paths: list, size=None, short_side: int = None) -> np.ndarray:
    """Frame files of one video as uint8 [N, H, W, 3] (read_frame); frames of different sizes are an error naming
    their folder."""
    frames = [read_frame(p, size, short_side) for p in paths]
    if len({f.shape for f in frames}) > 1:
        raise ValueError(f"video folder '{paths[0].parent}' mixes frame sizes {sorted({f.shape for f in frames})}")
    return np.stack(frames)


def read_frame(path, size=None, short_side: int = None) -> np.ndarray:
    """One RGB frame as uint8 [H, W, 3], optionally resized (decoded_size; PIL's bilinear, antialiased); an
    unreadable file is an error naming it."""
    try:
        with Image.open(path) as im:
            im = im if im.mode == "RGB" else im.convert("RGB")
            target = decoded_size(*im.size, size, short_side)
            return np.asarray(im if target == im.size else im.resize(target, Image.BILINEAR))
    except (OSError, ValueError, SyntaxError) as e:
        raise OSError(f"cannot read frame '{path}': {e}") from e


# §4.2's augmentation in the authors' order of operations (DESIGN.md "Data"; `dataset/slt_dataset.py` L41-48,
# L100-106, vidaug): on the frame as released, a rotation by up to 30 degrees about its centre and a shift by whole
# pixels, up to 10 px of the 210x260 (width x height) release frame (the same fraction of any other frame), each on
# its own with probability p; then the resize to 256x256 and the 224 crop. Their random resize is undone by that
# fixed resize, so it is left out.
MAX_ROTATION = math.radians(30)
MAX_SHIFT_PX = 10
RELEASE_SIZE = (210, 260)                 # (width, height) of PHOENIX14T's frames


def affine_crop(frames, aspect, size: int, angle, shift, offset):
    """The authors' order in one grid_sample: rotate the source frame by `angle` (radians, counter-clockwise as
    PIL's Image.rotate) about its centre, shift it (content moves by -shift, as PIL's affine transform), resize
    it to the R x R square that `frames` already are, crop size x size at `offset`. Working on the square resize
    of a frame of height/width `aspect`, the rotation is S A S^-1 with S = diag(R / W, R / H).
    frames [B, T, C, R, R] float; aspect [B]; angle [B]; shift [B, 2] (x, y) as fractions of the frame's width
    and height; offset [B, 2] (top, left) pixels of the resize -> [B, T, C, size, size]."""
    B, T, C, R, _ = frames.shape
    cos, sin = angle.cos(), angle.sin()
    rot = torch.stack([torch.stack([cos, -sin * aspect], -1), torch.stack([sin / aspect, cos], -1)], 1)  # [B, 2, 2]
    # an output pixel at o (the crop's [-1, 1] grid) reads the resize at rot (o size / 2 + d + R shift), relative to
    # its centre, d = crop centre - frame centre; grid_sample wants that in the resize's [-1, 1] grid
    d = offset.flip(-1).to(frames.dtype) + (size - R) / 2                                        # [B, 2] (x, y)
    t = rot @ (d + R * shift)[:, :, None]                                                        # [B, 2, 1]
    theta = torch.cat([rot * size / R, 2 / R * t], 2).to(frames.dtype)                          # [B, 2, 3]
    grid = F.affine_grid(theta, [B, T * C, size, size], align_corners=False)                    # [B, size, size, 2]
    out = F.grid_sample(frames.reshape(B, T * C, R, R), grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)
    return out.view(B, T, C, size, size)


def augment(frames, source_sizes, size: int, p=0.5):
    """One random rotation and one random shift per video (each with probability p) and one random crop, the
    same for every frame of it. frames [B, T, 3, R, R], the square resize of frames of source_sizes [B, 2]
    (height, width), on any device -> [B, T, 3, size, size]."""
    B, R, device = frames.shape[0], frames.shape[-1], frames.device
    on = torch.rand(B, 2, device=device) < p                                 # rotate?, shift?
    angle = torch.where(on[:, 0], MAX_ROTATION * (torch.rand(B, device=device) * 2 - 1), 0.0)
    pixels = torch.randint(-MAX_SHIFT_PX, MAX_SHIFT_PX + 1, (B, 2), device=device)  # whole pixels, as vidaug
    shift = torch.where(on[:, 1:], pixels / torch.tensor(RELEASE_SIZE, device=device), 0.0)
    offset = torch.randint(0, R - size + 1, (B, 2), device=device)          # one crop for the whole video
    aspect = (source_sizes[:, 0] / source_sizes[:, 1]).to(device, frames.dtype)
    return affine_crop(frames, aspect, size, angle, shift, offset)


def prepare(batch, device, train: bool):
    """Paper §4.2 on a whole batch, on the device: uint8 frames -> augmented and cropped (training) and ImageNet-
    normalised float frames [B, T, 3, H, W]; the loader ships uint8, a quarter of the bytes of float. A training
    loader ships the whole square resize (`crop` in the batch), whose crop follows the augmentation."""
    frames, mask = batch["frames"].to(device, non_blocking=True), batch["frame_mask"].to(device, non_blocking=True)
    if frames.dim() == 3:  # precomputed features (finetune.py --cache-features), not frames
        return frames, mask
    size = batch.get("crop")
    if size is not None and train:
        frames = augment(frames.float(), batch["source_sizes"], size)  # on 0..255: the affine's zero padding is black
    elif size is not None:  # a training loader's frames, read without augmentation: the central crop
        top = int(round((frames.shape[-1] - size) / 2))
        frames = frames[..., top:top + size, top:top + size]
    elif train:
        raise ValueError("augmentation needs the whole resized frames of a training loader (Phoenix14T(train=True))")
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1)
    # (x / 255 - mean) / std in one pass over the batch (uint8 * float promotes to float)
    return torch.addcmul(-mean / std, frames, 1 / (255 * std)), mask  # padded frames are never read


def select_frames(n: int, frame_stride: int = 1, max_frames: int = 300) -> np.ndarray:
    """Which of a video's n frames are read: every --frame-stride'th, subsampled evenly to --max-frames."""
    keep = np.arange(0, n, frame_stride)
    if len(keep) > max_frames:
        keep = keep[np.linspace(0, len(keep) - 1, max_frames).round().astype(int)]
    return keep


def resize_crop(pixels: np.ndarray, size: int, train: bool) -> torch.Tensor:
    """Paper §4.2: uint8 [T, H, W, 3] -> resize 256, central crop 224: uint8 [T, 3, 224, 224] (other sizes in the
    same ratio); for training the whole 256x256 resize, which prepare augments and crops on the device (the
    authors augment before the crop). Every video the project reads, a dataset's or one of your own
    (evaluate.py --video), passes here."""
    resize = round(size * 256 / 224)
    video = torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2)  # [T, 3, H, W] uint8, channels-last
    if video.shape[-2:] != (resize, resize):
        # on uint8 (not float) torch's antialiased bilinear resize is ~15x faster on CPU; rounds to whole levels
        video = F.interpolate(video, size=(resize, resize), mode="bilinear", align_corners=False, antialias=True)
    if train:
        return video  # channels-last strides: collate's copy into the batch makes it contiguous
    top = int(round((resize - size) / 2))
    return video[:, :, top:top + size, top:top + size].contiguous()


class Phoenix14T(torch.utils.data.Dataset):
    """Paper §4.2: a split of any layout (read_split; the name is PHOENIX14T's, the first it read) as uint8
    frames [T, 3, size, size] with translations; a video is a frame folder or a video file.

    packed=True reads the frames from the split's pack (see pack_split) instead of the frame files or videos;
    everything after decoding (frame selection, resize, crop, augmentation, normalisation) is the same code.
    """

    def __init__(self, root, split, train=False, size=224, max_frames=300, frame_stride=1, packed=False,
                 packed_dir=None):
        self.root, self.split, self.train = Path(root), split, train
        self.size = size
        self.max_frames, self.frame_stride = max_frames, frame_stride
        self.rows = read_split(root, split)
        self.videos = {r["name"]: r["video"] for r in self.rows}
        self.pack = None
        if packed:
            command = pack_command(root, split, packed_dir)
            self.pack = Pack(packed_path(root, split, packed_dir), command)

    def __len__(self):
        return len(self.rows)

    def frame_paths(self, name) -> list[Path]:
        """A frame folder's files, after --frame-stride and even subsampling to --max-frames."""
        folder = self.videos[name]
        paths = frame_files(folder)
        if not paths:
            raise FileNotFoundError(f"video folder '{folder}' has no images (missing or empty)")
        return [paths[i] for i in select_frames(len(paths), self.frame_stride, self.max_frames)]

    def frame_indices(self, name) -> np.ndarray:
        """Which of the video's frames are read: 0-based indices into its frames, after select_frames."""
        if self.pack is not None:
            n = self.pack.n_frames(name)
        elif self.videos[name].is_dir():
            n = len(frame_files(self.videos[name]))
        else:  # a video file: its frames counted by decoding them, tiny
            n = sum(1 for _ in iter_video(self.videos[name], size=(16, 16)))
        return select_frames(n, self.frame_stride, self.max_frames)

    def read_pixels(self, name) -> np.ndarray:
        """The selected frames of one video as uint8 [T, H, W, 3], from the frame files, the video file (decoded
        at resize_crop's square, so that it skips its resize and memory follows the output size) or the pack."""
        if self.pack is not None:
            return self.pack.read(name, self.frame_indices(name))
        video = self.videos[name]
        if video.is_file():
            resize = round(self.size * 256 / 224)
            pixels = read_video(video, size=(resize, resize))
            return pixels[select_frames(len(pixels), self.frame_stride, self.max_frames)]
        return read_frames(self.frame_paths(name))

    def transform(self, pixels: np.ndarray) -> torch.Tensor:
        """Paper §4.2: uint8 [T, H, W, 3] -> uint8 [T, 3, size, size] (resize_crop)."""
        return resize_crop(pixels, self.size, self.train)

    def __getitem__(self, i):
        row = self.rows[i]
        pixels = self.read_pixels(row["name"])
        if self.pack is not None:
            source = self.pack.source_size(row["name"])
        else:  # a video file is decoded at the square resize: its stored size comes from its header
            video = self.videos[row["name"]]
            source = video_file_size(video) if video.is_file() else pixels.shape[1:3]
        return {"name": row["name"], "translation": row["translation"], "frames": self.transform(pixels),
                "source_size": tuple(source), "crop": self.size if self.train else None}


def collate(batch) -> dict:
    """Zero-padded frames [B, T, 3, H, W] with frame_mask [B, T] (True = real frame)."""
    lengths = torch.tensor([len(b["frames"]) for b in batch])
    shape = (len(batch), int(lengths.max()), *batch[0]["frames"].shape[1:])
    if torch.utils.data.get_worker_info() is not None:  # in a worker: build the batch in shared memory directly,
        elem = batch[0]["frames"]  # saving the copy the worker's queue would make (as torch's default_collate does)
        storage = torch.UntypedStorage._new_shared(math.prod(shape) * elem.element_size())
        frames = elem.new_empty(0).set_(storage, 0, shape)
    else:
        frames = batch[0]["frames"].new_empty(shape)
    for i, b in enumerate(batch):
        frames[i, :len(b["frames"])] = b["frames"]
        frames[i, len(b["frames"]):] = 0  # only the padding is zeroed: one pass over the batch less
    return {"frames": frames, "frame_mask": torch.arange(frames.shape[1])[None] < lengths[:, None],
            "names": [b["name"] for b in batch], "translations": [b["translation"] for b in batch],
            "source_sizes": torch.tensor([b.get("source_size", shape[-2:]) for b in batch]),  # [B, 2] (H, W)
            "crop": batch[0].get("crop")}  # training: the crop size; the frames are the whole resize


# -----------------------------------------------------------------------------
# packed frames: each split once as one memory-mapped stream of JPEGs (DESIGN.md "Data"; decoding ~100 small PNG
# files a video is too slow to keep a GPU busy). <packed-dir>/<split>/ holds frames.bin (the JPEGs back to back),
# offsets.npy (int64 [N + 1], byte offsets of the N frames) and index.json (video names, frame counts, each video's
# frame size before any resize, which the augmentation needs, and settings).

PACK_VERSION = 2


def packed_path(root, split, packed_dir=None) -> Path:
    """A split's pack folder, <packed_dir or <root>/packed>/<split>."""
    return (Path(packed_dir) if packed_dir else Path(root) / "packed") / split


def pack_command(root, split, packed_dir=None) -> str:
    """The command that (re)builds a split's pack, for error messages."""
    return (f"python data.py --pack --data {root} --splits {split}"
            + (f" --packed-dir {packed_dir}" if packed_dir else ""))


def _encode_video(job) -> tuple:
    """One video's frames (a frame folder's in natural name order, or a video file's, decoded at the pack's size)
    as JPEG bytes, and the frames' [height, width] before the resize (runs in a pool worker)."""
    video, quality, resize = job
    video, size = Path(video), (resize, resize) if resize else None
    if video.is_file():
        frames, source = iter_video(video, size=size), video_file_size(video)
    else:
        paths = frame_files(video)
        if not paths:
            raise FileNotFoundError(f"video folder '{video}' has no images (missing or empty)")
        frames = (read_frame(path, size) for path in paths)  # PIL's bilinear resize is antialiased, like the loader's
        source = list(frame_size(paths[0]))[::-1]
    out = []
    for frame in frames:
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    if not out:
        raise ValueError(f"video file '{video}': no video frames could be decoded")
    return out, source


def pack_problems(folder: Path) -> str:
    """What is wrong with a pack's files, checked against each other without decoding a frame ('' if nothing):
    index.json parses and its counts match offsets.npy, whose offsets rise from 0 to frames.bin's size."""
    folder = Path(folder)
    missing = [n for n in ("index.json", "offsets.npy", "frames.bin") if not (folder / n).is_file()]
    if missing:
        return f"{', '.join(missing)} missing"
    try:
        meta = json.loads((folder / "index.json").read_text())
        names, counts = meta["names"], meta["counts"]
        assert len(names) == len(counts) and all(isinstance(c, int) and c > 0 for c in counts)
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError):
        return "index.json is damaged (not the JSON index of a pack)"
    if meta.get("version") != PACK_VERSION or len(meta.get("sizes", ())) != len(names):
        return f"index.json is of pack format {meta.get('version')}, not {PACK_VERSION} (no frame sizes)"
    try:
        offsets = np.load(folder / "offsets.npy")
    except (ValueError, OSError, EOFError):
        return "offsets.npy is damaged (truncated or not a numpy array)"
    size = (folder / "frames.bin").stat().st_size
    if offsets.ndim != 1 or len(offsets) != sum(counts) + 1:
        return f"offsets.npy holds {offsets.size} offsets, index.json counts {sum(counts)} frames (+1)"
    if offsets[0] != 0 or (np.diff(offsets) <= 0).any():
        return "offsets.npy is damaged (offsets do not rise from 0)"
    if offsets[-1] != size:
        return f"frames.bin holds {size} bytes, offsets.npy ends at {offsets[-1]} (truncated or replaced)"
    return ""


def _pack_complete(folder: Path, names: list, settings: dict) -> bool:
    """Whether `folder` is an intact, finished pack of exactly these videos with these settings."""
    if pack_problems(folder):
        return False
    meta = json.loads((folder / "index.json").read_text())
    return meta["names"] == names and all(meta.get(k) == v for k, v in settings.items())


def pack_split(root, split, packed_dir=None, quality: int = 93, resize: int = None, workers: int = None) -> Path:
    """Re-encode a split's frames (frame folders or video files) as JPEG (quality 93; optionally resized to
    resize x resize) into one file; skipped when already packed; built under a temporary name and renamed, so
    never left half-written. A build that fails removes its temporary folder, and the ones that interrupted builds
    (their process gone) left behind are removed first."""
    root = Path(root)
    folder = packed_path(root, split, packed_dir)
    rows = read_split(root, split)
    names = [r["name"] for r in rows]  # unique (read_split refuses duplicates), in the annotation file's order
    settings = {"version": PACK_VERSION, "quality": quality, "resize": resize}
    if _pack_complete(folder, names, settings):
        return folder
    atomic_write(folder, lambda tmp: _write_pack(tmp, rows, settings, workers))
    return folder


def _write_pack(folder: Path, rows: list, settings: dict, workers: int = None):
    """The pack of a split's videos (read_split's `rows`), written into a new `folder`."""
    folder.mkdir()
    jobs = [(r["video"], settings["quality"], settings["resize"]) for r in rows]
    offsets, counts, sizes = [0], [], []
    with open(folder / "frames.bin", "wb") as f, multiprocessing.Pool(workers or os.cpu_count() or 1) as pool:
        for jpegs, source in pool.imap(_encode_video, jobs, chunksize=4):  # in order: written sequentially
            for jpeg in jpegs:
                f.write(jpeg)
                offsets.append(offsets[-1] + len(jpeg))
            counts.append(len(jpegs))
            sizes.append(source)
    np.save(folder / "offsets.npy", np.array(offsets, dtype=np.int64))
    names = [r["name"] for r in rows]
    (folder / "index.json").write_text(json.dumps({**settings, "names": names, "counts": counts, "sizes": sizes}))


class Pack:
    """Reads selected frames of a video from a split's pack; memory-maps frames.bin lazily, so that
    each DataLoader worker maps it itself (pickling the dataset never copies the file)."""

    def __init__(self, folder: Path, command: str = "python data.py --pack --data ROOT --splits SPLIT"):
        self.folder, self.command = Path(folder), command
        if not (self.folder / "index.json").is_file():
            raise FileNotFoundError(f"frame pack '{self.folder}' not found or incomplete: "
                                    f"build it once with `{command}`")
        damage = pack_problems(self.folder)
        if damage:
            raise OSError(f"frame pack '{self.folder}' is damaged: {damage}; rebuild it with `{command}`")
        meta = json.loads((self.folder / "index.json").read_text())
        starts = np.cumsum([0] + meta["counts"])[:-1].tolist()
        # name -> (first, count), and the frames' size before the pack's resize
        self.videos = {name: (s, n) for name, s, n in zip(meta["names"], starts, meta["counts"])}
        self.sizes = dict(zip(meta["names"], meta["sizes"]))                                      # name -> [H, W]
        self.offsets = np.load(self.folder / "offsets.npy")                                       # int64 [N + 1]
        self.blob = None

    def __getstate__(self):
        return {**self.__dict__, "blob": None}

    def n_frames(self, name) -> int:
        """How many frames the video has in the pack."""
        if name not in self.videos:
            raise FileNotFoundError(f"video '{name}' is not in frame pack '{self.folder}' (packed from another "
                                    f"annotation file?): delete the pack and rebuild it with `{self.command}`")
        return self.videos[name][1]

    def source_size(self, name) -> tuple:
        """The video's (height, width) before the pack's resize."""
        self.n_frames(name)  # a video not in the pack: the error that names it
        return tuple(self.sizes[name])

    def read(self, name, keep) -> np.ndarray:
        """Frames `keep` (indices into the video) decoded to uint8 [T, H, W, 3]."""
        if self.blob is None:
            self.blob = np.memmap(self.folder / "frames.bin", dtype=np.uint8, mode="r")
        start = self.videos[name][0]
        frames = []
        for k in keep:
            a, b = self.offsets[start + k], self.offsets[start + k + 1]
            try:
                with Image.open(io.BytesIO(self.blob[a:b])) as im:
                    frames.append(np.asarray(im if im.mode == "RGB" else im.convert("RGB")))
            except (OSError, ValueError, SyntaxError) as e:
                raise OSError(f"cannot decode frame {k} of video '{name}' in frame pack '{self.folder}' ({e}): "
                              f"delete the pack and rebuild it with `{self.command}`") from e
        return np.stack(frames)


def main():
    """The one-off packing step, `python data.py --pack --data {phoenix14t,how2sign,csl-daily,synthetic,PATH}
    [--splits ...]`, and the check of every video (`--check [--full]`)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", action="store_true", help="pack the splits' frames into <root>/packed/<split>/")
    ap.add_argument("--check", action="store_true", help="check every video of the splits as training does first "
                    "(frame headers, a video file's first frame) and list the problems")
    ap.add_argument("--full", action="store_true", help="with --check: decode every frame of every video")
    ap.add_argument("--data", default="phoenix14t", help="phoenix14t, how2sign, csl-daily, a synthetic corpus, or a "
                    "folder in one of the layouts (see above)")
    ap.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS, help="which splits")
    ap.add_argument("--packed-dir", help="where the packs go (default: <root>/packed); one sub-folder per split")
    ap.add_argument("--quality", type=int, default=93, help="JPEG quality")
    ap.add_argument("--resize", type=int, help="store frames resized to this square size, 0 = as shipped (default: "
                    "256, the paper's resize before the 224 crop, so the loader skips it; as shipped for synthetic)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="encoding processes")
    args = ap.parse_args()
    if not (args.pack or args.check):
        ap.error("nothing to do: pass --pack or --check")
    root = resolve_root(args.data)
    if args.check:
        start = time.perf_counter()
        problems = check_videos(root, args.splits, full=args.full)
        print(f"checked {'/'.join(args.splits)} under '{root}' in {time.perf_counter() - start:.1f} s: "
              + (f"{len(problems)} problem(s)\n  " + "\n  ".join(problems) if problems else "no problems"))
        if problems:
            raise SystemExit(1)
    if args.pack:
        if args.resize is None:  # synthetic frames are 64x64, read at 37 by the tiny preset
            args.resize = 0 if args.data.startswith("synthetic") else 256
        for split in args.splits:
            pack_one(root, split, args)


def pack_one(root, split, args):
    """`data.py --pack` for one split, saying what it did."""
    index = packed_path(root, split, args.packed_dir) / "index.json"
    before = index.stat().st_mtime_ns if index.is_file() else None
    damage = pack_problems(index.parent) if before is not None else ""
    if damage:
        print(f"{split}: the pack in '{index.parent}' is damaged ({damage}): rebuilding it")
    start = time.perf_counter()
    folder = pack_split(root, split, args.packed_dir, args.quality, args.resize or None, args.workers)
    seconds = time.perf_counter() - start
    n, size = len(np.load(folder / "offsets.npy")) - 1, (folder / "frames.bin").stat().st_size
    if index.stat().st_mtime_ns == before:
        print(f"{split}: already packed, {n} frames, {size / 2**20:.1f} MiB in '{folder}'")
    else:
        print(f"{split}: packed {n} frames, {size / 2**20:.1f} MiB in '{folder}' in {seconds:.1f} s "
              f"({n / seconds:.0f} frames/s)")


if __name__ == "__main__":
    main()
