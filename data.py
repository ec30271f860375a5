"""The data (paper §4.1, §4.2; DESIGN.md "Data"): PHOENIX14T's videos with their German translations, read as
released, and what §4.2 does to every frame: frames selected, resized to 256 and cropped to 224, augmented in
training (rotation, shift, crop), normalised; the dataset and its batches.

    <root>/annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv (name|video|start|end|speaker|orth|translation)
    <root>/features/fullFrame-210x260px/{train,dev,test}/<name>/images0001.png ...

`--data` names a dataset (resolve_root) or is a root folder. The other layouts (How2Sign, CSL-Daily, your own
videos) plug in from corpora/ (LAYOUTS), and so do video decoding and the JPEG frame packs. A name in an
annotation file is a name: it must resolve inside its split's folder.
"""
import functools
import math
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import tokenizer
from corpora import csl_daily, custom, decode, files, how2sign, pack

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FRAME_DIR = Path("features") / "fullFrame-210x260px"
SPLITS = ("train", "dev", "test")
LANGS = ("de", "en", "zh")
# the generated corpora, built by `python -m tools.synthetic --setting NAME` under data/NAME (synthetic.SETTINGS;
# synthetic-en in How2Sign's layout, synthetic-zh in CSL-Daily's)
SYNTHETIC = ("synthetic", "synthetic-hard", "synthetic-en", "synthetic-zh")
# --data names: an environment variable (None: none) and the default folder
NAMED_ROOTS = {"phoenix14t": ("PHOENIX14T_ROOT", "data/phoenix14t"), "how2sign": ("HOW2SIGN_ROOT", "data/how2sign"),
               "csl-daily": ("CSL_DAILY_ROOT", "data/csl-daily"),
               **{name: (None, f"data/{name}") for name in SYNTHETIC}}


def annotation_path(root, split) -> Path:
    """Where a split's official PHOENIX14T annotation CSV lives."""
    return Path(root) / "annotations" / "manual" / f"PHOENIX-2014-T.{split}.corpus.csv"


def resolve_root(data: str) -> Path:
    """The --data flag -> a dataset root: phoenix14t ($PHOENIX14T_ROOT or data/phoenix14t), how2sign ($HOW2SIGN_ROOT
    or data/how2sign), csl-daily ($CSL_DAILY_ROOT or data/csl-daily), a synthetic corpus (data/<name>, which
    `python -m tools.synthetic` builds) or a folder in one of the layouts (detect_layout)."""
    env, default = NAMED_ROOTS.get(data, (None, data))
    given = os.environ.get(env, default) if env else default
    if not str(given).strip():  # Path("") is the current folder, which would be read as the dataset
        what = f"${env} is set but empty" if env else "--data is empty"
        raise FileNotFoundError(f"{what}: set it to the dataset's folder (docs/datasets.md)" +
                                (f", or unset it to read data/{data}" if env else ""))
    root = Path(given)
    if not root.is_dir():
        if data in NAMED_ROOTS and env is None:
            setting = f" --setting {data}" if data != "synthetic" else ""
            how = f"generate it once with `python -m tools.synthetic{setting}`"
        elif env:
            how = (f"set {env} to the folder holding the dataset as released (see docs/datasets.md), or pass "
                   "--data PATH (or --data synthetic)")
        else:
            how = "pass a dataset folder (layouts: see docs/datasets.md), or phoenix14t, how2sign, csl-daily, synthetic"
        raise FileNotFoundError(f"dataset root '{root}' (--data {data}) not found: {how}")
    return root


# The layouts beyond PHOENIX14T, one file each in corpora/: each gives its language (LANG; None: --lang says it),
# detect(root), split_file(root, split) and read(root, split) -> rows. A new benchmark is one new file and a line here.
LAYOUTS = {"how2sign": how2sign, "csl-daily": csl_daily, "custom": custom}


def detect_layout(root) -> str:
    """Which layout a root folder holds: "phoenix14t" or a name of LAYOUTS."""
    if (Path(root) / "annotations" / "manual").is_dir():
        return "phoenix14t"
    for name, layout in LAYOUTS.items():
        if layout.detect(Path(root)):
            return name
    raise FileNotFoundError(f"'{root}' holds no dataset in a known layout: looked for annotations/manual/ "
                            "(PHOENIX14T), sentence_level/ (How2Sign), sentence_label/ (CSL-Daily) and "
                            "train.csv, dev.csv, test.csv (name|video|translation; see corpora/custom.py)")


def dataset_language(root, lang_flag: str = None) -> str:
    """The language of a dataset's translations: --lang when given, else the layout's (PHOENIX14T de, How2Sign en,
    CSL-Daily zh); the custom layout has none, so there --lang is required."""
    if lang_flag is not None:
        if lang_flag not in LANGS:
            raise ValueError(f"--lang {lang_flag}: unknown language, choose one of {', '.join(LANGS)}")
        return lang_flag
    layout = detect_layout(root)
    lang = "de" if layout == "phoenix14t" else LAYOUTS[layout].LANG
    if lang is None:
        raise ValueError(f"'{root}' is a folder of your own videos (train.csv ...): say the language of its "
                         f"translations with --lang {{{','.join(LANGS)}}}")
    return lang


def split_file(root, split) -> Path:
    """The annotation file that a split is read from, in the root's layout (CSL-Daily: its split file)."""
    layout = detect_layout(root)
    return annotation_path(root, split) if layout == "phoenix14t" else LAYOUTS[layout].split_file(Path(root), split)


def present_splits(root) -> list[str]:
    """The splits whose annotation file exists."""
    return [s for s in SPLITS if split_file(root, s).is_file()]


def read_split(root, split) -> list[dict]:
    """The rows {name, translation, video} of a split in any layout, video the path of its frame folder or video
    file (checked to lie inside its split's folder; whether it exists is check_videos's). A malformed or duplicate
    row is an error naming the file and line. Read once per process (until its annotation file changes)."""
    if split not in SPLITS:
        raise ValueError(f"split '{split}': not one of {', '.join(SPLITS)}")
    layout = detect_layout(root)
    more = getattr(LAYOUTS.get(layout), "sources", None)  # what else a layout's rows depend on (files, folders)
    sources = [split_file(root, split), *(more(Path(root), split) if more else ())]
    reader = _read_phoenix if layout == "phoenix14t" else LAYOUTS[layout].read
    return files.read_once((str(Path(root).resolve()), split), sources, lambda: reader(Path(root), split))


def read_splits(root, splits) -> dict:
    """The one reader of a stage's splits: split -> rows (read_split) for each of `splits`, each holding at least
    one video, with every name unique across all the splits of the dataset (a name in train and dev would take
    the other's sentence wherever videos are looked up by name). Refusals are SystemExit naming the file."""
    try:
        rows = {s: read_split(root, s) for s in dict.fromkeys([*splits, *present_splits(root)])}
    except (ValueError, OSError) as e:
        raise SystemExit(str(e)) from None
    for s in splits:
        if not rows[s]:
            raise SystemExit(f"split '{s}' of '{root}' is empty: '{split_file(root, s)}' holds no videos of it; "
                             "nothing was written")
    seen = {}
    for s, split_rows in rows.items():
        for row in split_rows:
            if row["name"] in seen and seen[row["name"]] != s:
                first = seen[row["name"]]
                raise SystemExit(f"video name '{row['name']}' is in {first} ('{split_file(root, first)}') and in {s} "
                                 f"('{split_file(root, s)}'): names must be unique across the splits of a dataset")
            seen[row["name"]] = s
    return {s: rows[s] for s in splits}


def _read_phoenix(root: Path, split: str) -> list[dict]:
    path = annotation_path(root, split)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file '{path}' not found (split '{split}' of root '{root}')")
    frames = root / FRAME_DIR / split
    rows = [(line, {"name": r["name"], "translation": r["translation"],
                    "video": files.inside(frames, r["name"], f"'{path}', line {line}")})
            for line, r in files.read_table(path, "|", ("name", "translation"))]
    return files.unique_rows(rows, path)


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


# §4.2's augmentation in the authors' order of operations (DESIGN.md "Data"; `dataset/slt_dataset.py` L41-48 @73cc504,
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


class SignVideos(torch.utils.data.Dataset):
    """Paper §4.2: a split of any layout (read_split: PHOENIX14T, How2Sign, CSL-Daily, custom) as uint8
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
        # a sentence of a full-length video (How2Sign's realigned times): name -> (start, end) in seconds
        self.segments = {r["name"]: (r["start"], r["end"]) for r in self.rows if "start" in r}
        self.pack = None
        if packed:
            command = pack.pack_command(root, split, packed_dir)
            self.pack = pack.Pack(pack.packed_path(root, split, packed_dir), command)

    def __len__(self):
        return len(self.rows)

    def frame_paths(self, name) -> list[Path]:
        """A frame folder's files, after --frame-stride and even subsampling to --max-frames."""
        folder = self.videos[name]
        paths = decode.frame_files(folder)
        if not paths:
            raise FileNotFoundError(f"video folder '{folder}' has no images (missing or empty)")
        return [paths[i] for i in select_frames(len(paths), self.frame_stride, self.max_frames)]

    def frame_indices(self, name) -> np.ndarray:
        """Which of the video's frames are read: 0-based indices into its frames, after select_frames."""
        if self.pack is not None:
            n = self.pack.n_frames(name)
        elif self.videos[name].is_dir():
            n = len(decode.frame_files(self.videos[name]))
        else:  # a video file (or a sentence's stretch of one): its frames counted by decoding, none converted
            n = decode.count_frames(self.videos[name], *self.segment(name))
        return select_frames(n, self.frame_stride, self.max_frames)

    def read_pixels(self, name) -> np.ndarray:
        """The selected frames of one video as uint8 [T, H, W, 3], from the frame files, the video file (decoded
        at resize_crop's square, so that it skips its resize and memory follows the output size) or the pack."""
        if self.pack is not None:
            return self.pack.read(name, self.frame_indices(name))
        video, resize = self.videos[name], round(self.size * 256 / 224)
        if video.is_file():  # only the selected frames are converted and held; a sentence of a full-length video
            # is cut at every read (a pack, tools.prepare --pack, cuts it once)
            select = functools.partial(select_frames, frame_stride=self.frame_stride, max_frames=self.max_frames)
            return decode.read_selected(video, select, (resize, resize), None, *self.segment(name))[0]
        # a frame twice the resize or more is reduced while it is read: never held at its stored size
        return decode.read_frames(self.frame_paths(name), min_side=resize)

    def segment(self, name) -> tuple:
        """(start, end) seconds of a sentence in its full-length video; (None, None) for a whole video."""
        return self.segments.get(name, (None, None))

    def transform(self, pixels: np.ndarray) -> torch.Tensor:
        """Paper §4.2: uint8 [T, H, W, 3] -> uint8 [T, 3, size, size] (resize_crop)."""
        return resize_crop(pixels, self.size, self.train)

    def __getitem__(self, i):
        row = self.rows[i]
        pixels = self.read_pixels(row["name"])
        if self.pack is not None:
            source = self.pack.source_size(row["name"])
        else:  # frames may be reduced and a video file is decoded at the square resize: sizes come from headers
            video = self.videos[row["name"]]
            source = decode.video_file_size(video) if video.is_file() else \
                decode.frame_size(decode.frame_files(video)[0])[::-1]
        return {"name": row["name"], "translation": row["translation"], "frames": self.transform(pixels),
                "source_size": tuple(source), "crop": self.size if self.train else None}


def collate(batch, empty=None) -> dict:
    """Zero-padded frames [B, T, 3, H, W] with frame_mask [B, T] (True = real frame); `empty(shape, like)` makes
    the frames' tensor (default: like's new_empty; harness.run.collate's: in shared memory)."""
    lengths = torch.tensor([len(b["frames"]) for b in batch])
    shape = (len(batch), int(lengths.max()), *batch[0]["frames"].shape[1:])
    frames = empty(shape, batch[0]["frames"]) if empty else batch[0]["frames"].new_empty(shape)
    for i, b in enumerate(batch):
        frames[i, :len(b["frames"])] = b["frames"]
        frames[i, len(b["frames"]):] = 0  # only the padding is zeroed: one pass over the batch less
    return {"frames": frames, "frame_mask": torch.arange(frames.shape[1])[None] < lengths[:, None],
            "names": [b["name"] for b in batch], "translations": [b["translation"] for b in batch],
            "source_sizes": torch.tensor([b.get("source_size", shape[-2:]) for b in batch]),  # [B, 2] (H, W)
            "crop": batch[0].get("crop")}  # training: the crop size; the frames are the whole resize


def micro_batches(batch: dict, size: int = None) -> list:
    """A batch of collate's (or harness.run.collate_features') cut into batches of `size` videos in order, the last
    smaller when `size` does not divide it, each with its frames cut to its own longest video; [batch] when `size` is
    None or not smaller. Gradient accumulation's pieces (--micro-batch-size): views, no copy."""
    n = len(batch["names"])
    if size is None or size >= n:
        return [batch]
    micros = []
    for start in range(0, n, size):
        micro = {k: v[start:start + size] if isinstance(v, (torch.Tensor, list)) else v for k, v in batch.items()}
        longest = int(micro["frame_mask"].sum(1).max())
        micro["frames"], micro["frame_mask"] = micro["frames"][:, :longest], micro["frame_mask"][:, :longest]
        micros.append(micro)
    return micros


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
        raise ValueError("augmentation needs the whole resized frames of a training loader (SignVideos(train=True))")
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1)
    # (x / 255 - mean) / std in one pass over the batch (uint8 * float promotes to float)
    return torch.addcmul(-mean / std, frames, 1 / (255 * std)), mask  # padded frames are never read


def text_batch(tok, sentences, device, max_tokens: int = tokenizer.MAX_TEXT_TOKENS):
    """mBART's formats as the authors' code builds them (DESIGN.md "Tokenizer"): source `x </s> de_DE` for the
    text encoder; decoder labels the same `x </s> de_DE` and decoder input `de_DE x </s>` (mBART's
    shift_tokens_right of the labels); each at most max_tokens long."""
    pieces = [tok.encode(s)[:max_tokens - 2] for s in sentences]

    def pad(rows):
        ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(r) for r in rows], batch_first=True,
                                              padding_value=tok.pad_id).to(device)   # [B, L]
        return ids, ids != tok.pad_id

    source = pad([p + [tok.eos_id, tok.lang_id] for p in pieces])
    decoder_input = pad([[tok.lang_id] + p + [tok.eos_id] for p in pieces])
    labels, _ = pad([p + [tok.eos_id, tok.lang_id] for p in pieces])
    return source, decoder_input, labels


def translation_inputs(batch, tok, device, train: bool) -> tuple:
    """The translation model's inputs for a batch: its frames prepared (augmented when training, §4.2) and the
    decoder's input `de_DE x` (text_batch); and the labels `x </s>` [B, L] of eq. 6."""
    _, (dec_ids, dec_mask), labels = text_batch(tok, batch["translations"], device)
    return (*prepare(batch, device, train=train), dec_ids, dec_mask), labels
