"""PHOENIX14T's videos as the paper reads them (§4.2; DESIGN.md "Data"): the release's layout,

    <root>/annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv   name|video|start|end|speaker|orth|translation
    <root>/features/fullFrame-210x260px/{train,dev,test}/<name>/images0001.png ...

frames resized, cropped, augmented and normalised, and at the end of the file the JPEG frame packs that make
reading fast. `--data phoenix14t` reads $PHOENIX14T_ROOT or ./data/phoenix14t, `--data synthetic` the corpus
that synthetic.py generates in the same layout; any other value is a root folder.

    python data.py --pack --data phoenix14t [--splits train dev test]   # once: <root>/packed/<split>/, for packed=True
"""

import argparse
import csv
import io
import json
import math
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FRAME_DIR = Path("features") / "fullFrame-210x260px"
SPLITS = ("train", "dev", "test")


def annotation_path(root, split) -> Path:
    """Where a split's official annotation CSV lives."""
    return Path(root) / "annotations" / "manual" / f"PHOENIX-2014-T.{split}.corpus.csv"


# the generated corpora, built by `python synthetic.py --setting NAME` under data/NAME (synthetic.SETTINGS)
SYNTHETIC = ("synthetic", "synthetic-hard")


def resolve_root(data: str) -> Path:
    """The --data flag -> a dataset root: phoenix14t ($PHOENIX14T_ROOT or data/phoenix14t), synthetic or
    synthetic-hard (data/<name>, which `python synthetic.py` builds) or a folder in the release layout."""
    named = {"phoenix14t": os.environ.get("PHOENIX14T_ROOT", "data/phoenix14t")} | {n: f"data/{n}" for n in SYNTHETIC}
    root = Path(named.get(data, data))
    if not root.is_dir():
        how = ("generate it once with `python synthetic.py" + (f" --setting {data}`" if data != "synthetic" else "`")
               if data in SYNTHETIC else
               "set PHOENIX14T_ROOT to the folder holding annotations/ and features/, or pass --data PATH "
               "(or --data synthetic)")
        raise FileNotFoundError(f"dataset root '{root}' (--data {data}) not found: {how}")
    return root


def ground_truth_path(root, split) -> Path:
    """Where a split's sign timings lie, beside its annotations (synthetic corpora only, DESIGN.md
    "Synthetic corpus"): a TSV with header name, pseudogloss, first, last; one row per sign, its first and
    last frame numbered from 1 as the images%04d.png files are."""
    return annotation_path(root, split).with_name(f"synthetic.{split}.signs.tsv")


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
    a temporary. The one temp-and-rename of the project: checkpoints, caches, translations, packs, corpora."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
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


def read_split(root, split) -> list[dict]:
    """The rows (name, translation) of <root>/annotations/manual/PHOENIX-2014-T.<split>.corpus.csv; a row that is
    not UTF-8, lacks a field or has an empty name or translation is an error naming the file and line."""
    path = annotation_path(root, split)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file '{path}' not found (split '{split}' of root '{root}')")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"'{path}', line {line}: not UTF-8 (byte 0x{raw[e.start]:02x}); "
                         "save the file as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter="|", quoting=csv.QUOTE_NONE)
    if reader.fieldnames is not None and not {"name", "translation"} <= set(reader.fieldnames):
        raise ValueError(f"'{path}' lacks the name|...|translation header of PHOENIX-2014-T")
    rows = []
    for r in reader:
        where = f"'{path}', line {reader.line_num}"
        if None in r or None in r.values():
            n = sum(v is not None for k, v in r.items() if k is not None) + len(r.get(None, []))
            raise ValueError(f"{where}: {n} fields where the header has {len(reader.fieldnames)} "
                             "(fields are separated by '|')")
        if not r["name"].strip() or not r["translation"].strip():
            raise ValueError(f"{where}: empty {'name' if not r['name'].strip() else 'translation'}")
        rows.append({"name": r["name"], "translation": r["translation"]})
    return rows


def check_videos(root, splits, packed=False, packed_dir=None, limit: int = 20) -> list[str]:
    """Every video of `splits`, checked before training (no frame decoded): its folder holds images*.png
    frames or, with packed=True, its split's pack is intact and holds it. Returns the problems, at most `limit`
    listed and then a count of the rest."""
    problems = []
    for split in splits:
        names = [r["name"] for r in read_split(root, split)]
        if packed:
            folder = packed_path(root, split, packed_dir)
            command = pack_command(root, split, packed_dir)
            damage = pack_problems(folder)
            if damage:
                problems.append(f"frame pack '{folder}': {damage}; (re)build it with `{command}`")
                continue
            packed_names = set(json.loads((folder / "index.json").read_text())["names"])
            problems += [f"video '{n}' is not in frame pack '{folder}' (packed from another annotation file?): "
                         f"rebuild it with `{command}`" for n in names if n not in packed_names]
            continue
        for name in names:
            folder = Path(root) / FRAME_DIR / split / name
            if not folder.is_dir():
                problems.append(f"video folder '{folder}' is missing")
            elif not any(e.name.startswith("images") and e.name.endswith(".png") for e in os.scandir(folder)):
                problems.append(f"video folder '{folder}' has no images*.png frames")
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more"]
    return problems


# -----------------------------------------------------------------------------
# frames -> tensors (paper §4.2)


def read_frame(path) -> np.ndarray:
    """One RGB frame as uint8 [H, W, 3]; an unreadable file is an error naming it."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
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
    """Paper §4.2: a PHOENIX14T split as uint8 frames [T, 3, size, size] with translations.

    packed=True reads the frames from the split's pack (see pack_split) instead of the PNG files; everything
    after decoding (frame selection, resize, crop, augmentation, normalisation) is the same code.
    """

    def __init__(self, root, split, train=False, size=224, max_frames=300, frame_stride=1, packed=False,
                 packed_dir=None):
        self.root, self.split, self.train = Path(root), split, train
        self.size = size
        self.max_frames, self.frame_stride = max_frames, frame_stride
        self.rows = read_split(root, split)
        self.frame_dir = self.root / FRAME_DIR / split
        self.pack = None
        if packed:
            command = pack_command(root, split, packed_dir)
            self.pack = Pack(packed_path(root, split, packed_dir), command)

    def __len__(self):
        return len(self.rows)

    def frame_paths(self, name) -> list[Path]:
        """A video's frame files, after --frame-stride and even subsampling to --max-frames."""
        folder = self.frame_dir / name
        paths = sorted(folder.glob("images*.png"))
        if not paths:
            raise FileNotFoundError(f"video folder '{folder}' has no images*.png frames (missing or empty)")
        return [paths[i] for i in select_frames(len(paths), self.frame_stride, self.max_frames)]

    def frame_indices(self, name) -> np.ndarray:
        """Which of the video's frames are read: 0-based indices into its images*.png, after select_frames."""
        if self.pack is not None:
            return select_frames(self.pack.n_frames(name), self.frame_stride, self.max_frames)
        n = len(list((self.frame_dir / name).glob("images*.png")))
        return select_frames(n, self.frame_stride, self.max_frames)

    def read_pixels(self, name) -> np.ndarray:
        """The selected frames of one video as uint8 [T, H, W, 3], from the PNGs or the pack."""
        if self.pack is not None:
            return self.pack.read(name, self.frame_indices(name))
        paths = self.frame_paths(name)
        pixels = [read_frame(p) for p in paths]
        if len({a.shape for a in pixels}) > 1:
            raise ValueError(f"video folder '{paths[0].parent}' mixes frame sizes {sorted({a.shape for a in pixels})}")
        return np.stack(pixels)

    def transform(self, pixels: np.ndarray) -> torch.Tensor:
        """Paper §4.2: uint8 [T, H, W, 3] -> uint8 [T, 3, size, size] (resize_crop)."""
        return resize_crop(pixels, self.size, self.train)

    def __getitem__(self, i):
        row = self.rows[i]
        pixels = self.read_pixels(row["name"])
        source = self.pack.source_size(row["name"]) if self.pack is not None else pixels.shape[1:3]
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
    """One video folder's PNG frames, in file-name order, as JPEG bytes, and their (height, width) before the
    resize (runs in a pool worker)."""
    folder, quality, resize = job
    paths = sorted(Path(folder).glob("images*.png"))
    if not paths:
        raise FileNotFoundError(f"video folder '{folder}' has no images*.png frames (missing or empty)")
    out, source = [], None
    for path in paths:
        image = Image.fromarray(read_frame(path))
        source = source or [image.height, image.width]
        if resize:  # PIL's bilinear resize is antialiased, like the loader's
            image = image.resize((resize, resize), Image.BILINEAR)
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
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
    """Re-encode a split's PNG frames as JPEG (quality 93; optionally resized to resize x resize) into
    one file; skipped when already packed; built under a temporary name and renamed, so never left half-written."""
    root = Path(root)
    folder = packed_path(root, split, packed_dir)
    names = list(dict.fromkeys(r["name"] for r in read_split(root, split)))  # unique, in the CSV's order
    settings = {"version": PACK_VERSION, "quality": quality, "resize": resize}
    if _pack_complete(folder, names, settings):
        return folder
    atomic_write(folder, lambda tmp: _write_pack(tmp, root, split, names, settings, workers))
    return folder


def _write_pack(folder: Path, root: Path, split: str, names: list, settings: dict, workers: int = None):
    """The pack of a split's videos `names`, written into a new `folder`."""
    folder.mkdir()
    jobs = [(root / FRAME_DIR / split / name, settings["quality"], settings["resize"]) for name in names]
    offsets, counts, sizes = [0], [], []
    with open(folder / "frames.bin", "wb") as f, multiprocessing.Pool(workers or os.cpu_count() or 1) as pool:
        for jpegs, source in pool.imap(_encode_video, jobs, chunksize=4):  # in order: written sequentially
            for jpeg in jpegs:
                f.write(jpeg)
                offsets.append(offsets[-1] + len(jpeg))
            counts.append(len(jpegs))
            sizes.append(source)
    np.save(folder / "offsets.npy", np.array(offsets, dtype=np.int64))
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
    """The one-off packing step: `python data.py --pack --data {phoenix14t,synthetic,PATH} [--splits ...]`."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pack", action="store_true", help="pack the splits' frames into <root>/packed/<split>/")
    ap.add_argument("--data", default="phoenix14t", help="phoenix14t, synthetic, or a folder in the PHOENIX14T layout")
    ap.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS, help="which splits to pack")
    ap.add_argument("--packed-dir", help="where the packs go (default: <root>/packed); one sub-folder per split")
    ap.add_argument("--quality", type=int, default=93, help="JPEG quality")
    ap.add_argument("--resize", type=int, help="store frames resized to this square size, 0 = as shipped (default: "
                    "256, the paper's resize before the 224 crop, so the loader skips it; as shipped for synthetic)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="encoding processes")
    args = ap.parse_args()
    if not args.pack:
        ap.error("nothing to do: pass --pack")
    root = resolve_root(args.data)
    if args.resize is None:
        # synthetic frames are 64x64, read at 37 by the tiny preset
        args.resize = 0 if args.data in SYNTHETIC else 256
    for split in args.splits:
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
