"""
PHOENIX14T video loading (paper §4.2, DESIGN "Data") and a generated stand-in corpus in the same layout.

    <root>/annotations/manual/PHOENIX-2014-T.{train,dev,test}.corpus.csv   name|video|start|end|speaker|orth|translation
    <root>/features/fullFrame-210x260px/{train,dev,test}/<name>/images0001.png ...

`--data phoenix14t` reads $PHOENIX14T_ROOT or ./data/phoenix14t; `--data synthetic` builds ./data/synthetic
once (German weather sentences signed as coloured moving patterns); any other value is a root folder.
"""

import csv
import json
import math
import os
import shutil
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
    """DESIGN "Data": where a split's official annotation CSV lives."""
    return Path(root) / "annotations" / "manual" / f"PHOENIX-2014-T.{split}.corpus.csv"


def resolve_root(data: str) -> Path:
    """DESIGN "Data": the --data flag -> a dataset root (phoenix14t: $PHOENIX14T_ROOT or data/phoenix14t; synthetic: built once)."""
    if data == "synthetic":
        return make_synthetic(Path("data") / "synthetic")
    root = Path(os.environ.get("PHOENIX14T_ROOT", "data/phoenix14t")) if data == "phoenix14t" else Path(data)
    if not root.is_dir():
        raise FileNotFoundError(f"PHOENIX14T root '{root}' not found: set PHOENIX14T_ROOT to the folder holding "
                                "annotations/ and features/, or pass --data PATH (or --data synthetic)")
    return root


def read_split(root, split) -> list[dict]:
    """DESIGN "Data": the rows (name, translation) of <root>/annotations/manual/PHOENIX-2014-T.<split>.corpus.csv."""
    path = annotation_path(root, split)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file '{path}' not found (split '{split}' of root '{root}')")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="|", quoting=csv.QUOTE_NONE))
    if rows and not {"name", "translation"} <= rows[0].keys():
        raise ValueError(f"'{path}' lacks the name|...|translation header of PHOENIX-2014-T")
    return [{"name": r["name"], "translation": r["translation"]} for r in rows]


# -----------------------------------------------------------------------------
# frames -> tensors (paper §4.2)


def read_frame(path) -> np.ndarray:
    """DESIGN "Data": one RGB frame as uint8 [H, W, 3]; an unreadable file is an error naming it."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:
        raise OSError(f"cannot read frame '{path}': {e}") from e


def augment_video(frames, generator=None, p=0.5):
    """Paper §4.2: with probability p, one random rotation (±10°), rescale (0.9-1.1) and translation (±10%) for every frame."""
    if torch.rand((), generator=generator) >= p:
        return frames
    u = torch.rand(4, generator=generator, dtype=torch.float64) * 2 - 1  # uniform in [-1, 1]
    angle, scale, shift = math.radians(10) * u[0], 1 + 0.1 * u[1], 0.2 * u[2:]  # shift: 10% of a side in [-1, 1] units
    # affine_grid maps output to input coordinates: the inverse of x -> scale * R(angle) x + shift
    cos, sin = torch.cos(angle), torch.sin(angle)
    inverse = torch.stack([torch.stack([cos, sin]), torch.stack([-sin, cos])]) / scale  # R(-angle) / scale
    theta = torch.cat([inverse, -(inverse @ shift)[:, None]], 1).to(frames)  # [2, 3]
    T, C, H, W = frames.shape
    grid = F.affine_grid(theta[None], [1, C, H, W], align_corners=False).expand(T, H, W, 2)
    return F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Phoenix14T(torch.utils.data.Dataset):
    """Paper §4.2 / DESIGN "Data": a PHOENIX14T split as normalised frame tensors [T, 3, size, size] with translations."""

    def __init__(self, root, split, train=False, size=224, max_frames=300, frame_stride=1):
        self.root, self.split, self.train = Path(root), split, train
        self.size, self.resize = size, round(size * 256 / 224)  # 256 -> 224 as in the paper
        self.max_frames, self.frame_stride = max_frames, frame_stride
        self.rows = read_split(root, split)
        self.frame_dir = self.root / FRAME_DIR / split
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def __len__(self):
        return len(self.rows)

    def frame_paths(self, name) -> list[Path]:
        """DESIGN "Data": a video's frame files, after --frame-stride and even subsampling to --max-frames."""
        folder = self.frame_dir / name
        paths = sorted(folder.glob("images*.png"))[::self.frame_stride]
        if not paths:
            raise FileNotFoundError(f"video folder '{folder}' has no images*.png frames (missing or empty)")
        if len(paths) > self.max_frames:
            keep = np.linspace(0, len(paths) - 1, self.max_frames).round().astype(int)
            paths = [paths[i] for i in keep]
        return paths

    def __getitem__(self, i):
        row = self.rows[i]
        paths = self.frame_paths(row["name"])
        pixels = [read_frame(p) for p in paths]
        if len({a.shape for a in pixels}) > 1:
            raise ValueError(f"video folder '{paths[0].parent}' mixes frame sizes {sorted({a.shape for a in pixels})}")
        video = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).float().div_(255)  # [T, 3, H, W]
        video = F.interpolate(video, size=(self.resize, self.resize), mode="bilinear", align_corners=False, antialias=True)
        if self.train:
            top, left = torch.randint(0, self.resize - self.size + 1, (2,)).tolist()  # one crop for the whole video
        else:
            top = left = int(round((self.resize - self.size) / 2))
        video = video[:, :, top:top + self.size, left:left + self.size]
        if self.train:
            video = augment_video(video)
        video = (video - self.mean) / self.std
        return {"name": row["name"], "translation": row["translation"], "frames": video.contiguous()}


def collate(batch) -> dict:
    """DESIGN "Data": zero-padded frames [B, T, 3, H, W] with frame_mask [B, T] (True = real frame)."""
    lengths = torch.tensor([len(b["frames"]) for b in batch])
    frames = batch[0]["frames"].new_zeros(len(batch), int(lengths.max()), *batch[0]["frames"].shape[1:])
    for i, b in enumerate(batch):
        frames[i, :len(b["frames"])] = b["frames"]
    return {"frames": frames, "frame_mask": torch.arange(frames.shape[1])[None] < lengths[:, None],
            "names": [b["name"] for b in batch], "translations": [b["translation"] for b in batch]}


# -----------------------------------------------------------------------------
# synthetic corpus (DESIGN "Data", --data synthetic)

# Slots of a weather report, in sign order: time, place, temperature, weather. The sentence puts them
# in German word order "<time> <verb> <place> <rest of weather> <temperature>", so the signer's order
# differs from the word order. Every filler's pseudo-glosses are the same alone and in a sentence.
SYNTH_TIME = ["am montag", "am dienstag", "am mittwoch", "am donnerstag", "am freitag", "am samstag", "am sonntag",
              "morgen", "heute", "am wochenende"]
SYNTH_PLACE = ["im norden", "im süden", "im osten", "im westen", "an der küste", "in den alpen", "im flachland",
               "in bayern"]
SYNTH_WEATHER = [("regnet es", ""), ("schneit es", ""), ("scheint", "die sonne"), ("gibt es", "gewitter"),
                 ("weht", "ein kräftiger wind"), ("bleibt es", "trocken"), ("fällt", "schnee")]
SYNTH_TEMP = ["bei fünf grad", "bei zehn grad", "bei fünfzehn grad", "bei zwanzig grad", "bei dreißig grad"]
SYNTH_TEMP_P = 1 / 4  # share of sentences with a temperature, to keep videos short

BRIGHT = np.array([[230, 30, 30], [30, 210, 30], [40, 90, 255], [250, 230, 20], [230, 40, 230], [20, 230, 230],
                   [250, 250, 250], [255, 140, 0]], np.uint8)
DARK = np.array([[0, 0, 0], [0, 0, 100], [0, 80, 0], [100, 0, 0], [70, 0, 90], [80, 70, 0]], np.uint8)
DIRECTIONS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]])  # (dx, dy) of a sign's motion


def _shape_mask(shape, x, y, r):
    """Synthetic signs: the mask of one of five big shapes of half-size r, centred at 0 (x, y broadcast)."""
    if shape == 0:
        return x * x + y * y <= r * r  # disk
    if shape == 1:
        return (abs(x) <= r) & (abs(y) <= r)  # square
    if shape == 2:
        return (abs(y) <= r * 0.4) & (abs(x) <= r * 1.6)  # horizontal bar
    if shape == 3:
        return (abs(x) <= r * 0.4) & (abs(y) <= r * 1.6)  # vertical bar
    return ((abs(x) <= r * 0.35) | (abs(y) <= r * 0.35)) & (abs(x) <= r * 1.4) & (abs(y) <= r * 1.4)  # cross


def _render_sign(gloss_index, n_frames, size, rng):
    """Synthetic signs: one gloss as n_frames uint8 frames [n, size, size, 3], its own colours, shape and motion."""
    if gloss_index >= len(BRIGHT) * len(DARK):
        raise ValueError(f"the synthetic grammar has more glosses than the {len(BRIGHT) * len(DARK)} colour pairs")
    fg, bg = BRIGHT[gloss_index % len(BRIGHT)], DARK[gloss_index // len(BRIGHT)]
    shape = (gloss_index + gloss_index // len(BRIGHT)) % 5
    direction = DIRECTIONS[(gloss_index // 2 + gloss_index // len(BRIGHT)) % 4]
    step = np.linspace(-1, 1, n_frames)[:, None, None] * size * 0.16  # [n, 1, 1] travel along the direction
    jitter = rng.uniform(-0.08, 0.08, 2) * size  # where this occurrence is signed
    y, x = np.mgrid[:size, :size] - (size - 1) / 2  # [size, size]
    mask = _shape_mask(shape, x - jitter[0] - direction[0] * step, y - jitter[1] - direction[1] * step, size * 0.26)
    return np.where(mask[..., None], fg, bg).astype(np.uint8)  # [n, size, size, 3]


def _render_blank(n_frames, size, rng):
    """Synthetic signs: non-sign frames, blocky grey noise [n, size, size, 3] (blocks survive the downscaling)."""
    noise = rng.normal(110, 40, (n_frames, 8, 8, 1)).clip(0, 255).astype(np.uint8)
    return noise.repeat(-(-size // 8), 1).repeat(-(-size // 8), 2)[:, :size, :size].repeat(3, 3)


def _synthetic_sentences(rng, n_train, n_dev, n_test):
    """Synthetic corpus: distinct (time, place, weather, temp) slot choices; dev/test combinations unseen, their words seen, in train."""
    def draw():
        temp = int(rng.integers(len(SYNTH_TEMP))) if rng.random() < SYNTH_TEMP_P else -1
        return (int(rng.integers(len(SYNTH_TIME))), int(rng.integers(len(SYNTH_PLACE))),
                int(rng.integers(len(SYNTH_WEATHER))), temp)

    n_all = len(SYNTH_TIME) * len(SYNTH_PLACE) * len(SYNTH_WEATHER) * (len(SYNTH_TEMP) + 1)
    if n_train + n_dev + n_test > n_all // 2:
        raise ValueError(f"make_synthetic: {n_train + n_dev + n_test} videos asked, the grammar has only {n_all} sentences")
    splits, taken = {}, set()
    for split, n in (("train", n_train), ("dev", n_dev), ("test", n_test)):
        chosen = []
        for _ in range(200 * n + 1000):
            if len(chosen) == n:
                break
            slots = draw()
            seen = split == "train" or all(any(c[k] == slots[k] for c in splits["train"]) for k in range(4))
            if slots not in taken and seen:
                chosen.append(slots)
                taken.add(slots)
        if len(chosen) < n:
            raise ValueError(f"make_synthetic: could not draw {n} {split} sentences whose words all occur in train; "
                             "use more training videos")
        splits[split] = chosen
    return splits


def _synthetic_text(slots):
    """Synthetic corpus: (sentence in German word order, its pseudo-glosses in sign order)."""
    import pseudogloss
    time, place, (verb, rest), temp = (SYNTH_TIME[slots[0]], SYNTH_PLACE[slots[1]], SYNTH_WEATHER[slots[2]],
                                       SYNTH_TEMP[slots[3]] if slots[3] >= 0 else "")
    sentence = " ".join(w for w in (time, verb, place, rest, temp) if w)
    signs = [g for phrase in (time, place, temp, verb + " " + rest) for g in pseudogloss.extract(phrase)]
    if sorted(signs) != sorted(pseudogloss.extract(sentence)):
        raise RuntimeError(f"synthetic grammar: '{sentence}' tags as {pseudogloss.extract(sentence)}, "
                           f"its phrases as {signs}")
    return sentence, signs


def make_synthetic(root: Path, seed: int = 0, n_train: int = 600, n_dev: int = 60, n_test: int = 80,
                   frame_size: int = 64, sign_frames: int = 4) -> Path:
    """DESIGN "Data": builds (once, cached) a PHOENIX14T-layout corpus of weather sentences signed as coloured moving patterns."""
    import pseudogloss
    root = Path(root)
    params = {"seed": seed, "n_train": n_train, "n_dev": n_dev, "n_test": n_test, "frame_size": frame_size,
              "sign_frames": sign_frames, "version": 2}
    marker = root / "SYNTHETIC_COMPLETE.json"
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return root
    rng = np.random.default_rng(seed)
    vocab = sorted({g for phrase in SYNTH_TIME + SYNTH_PLACE + SYNTH_TEMP + [" ".join(w) for w in SYNTH_WEATHER]
                    for g in pseudogloss.extract(phrase)})
    gloss_index = {g: i for i, g in enumerate(vocab)}
    tmp = root.parent / f".{root.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    for split, sentences in _synthetic_sentences(rng, n_train, n_dev, n_test).items():
        (tmp / "annotations" / "manual").mkdir(parents=True, exist_ok=True)
        lines = ["name|video|start|end|speaker|orth|translation"]
        for i, slots in enumerate(sentences):
            name = f"synthetic_{split}_{i:04d}"
            sentence, signs = _synthetic_text(slots)
            lines.append(f"{name}|{name}/1/*.png|-1|-1|Synthetic|{' '.join(s.upper() for s in signs)}|{sentence}")
            parts = [_render_blank(1, frame_size, rng)]
            for k, sign in enumerate(signs):
                if k:
                    parts.append(_render_blank(int(rng.integers(1, 3)), frame_size, rng))  # 1-2 non-sign frames
                parts.append(_render_sign(gloss_index[sign], sign_frames, frame_size, rng))
            parts.append(_render_blank(1, frame_size, rng))
            folder = tmp / FRAME_DIR / split / name
            folder.mkdir(parents=True)
            for t, frame in enumerate(np.concatenate(parts)):
                Image.fromarray(frame).save(folder / f"images{t + 1:04d}.png", compress_level=1)
        annotation_path(tmp, split).write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp / "SYNTHETIC_COMPLETE.json").write_text(json.dumps(params))
    if marker.is_file() and json.loads(marker.read_text()) == params:  # another process finished first
        shutil.rmtree(tmp)
        return root
    if root.exists():  # a build with other parameters
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, root)
    return root
