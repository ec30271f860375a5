"""A generated stand-in for PHOENIX14T, in the release's layout: German weather-report sentences, each
pseudo-gloss signed as its own coloured moving pattern, in sign order (not the sentence's word order), with
non-sign frames between signs (DESIGN.md "Synthetic corpus"). A model that learns the task translates it
well; one that does not stays near chance. Build it once, then train with `--data synthetic`:

    python synthetic.py [--setting synthetic-hard] [--root data/synthetic]
"""
import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

import data
import pseudogloss

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


def _render_sign(gloss_index, n_frames, size, rng, variation=0.0):
    """Synthetic signs: one gloss as n_frames uint8 frames [n, size, size, 3], its own colours, shape and motion.
    variation > 0 performs each occurrence differently: shifted colours, size, travel and place."""
    if gloss_index >= len(BRIGHT) * len(DARK):
        raise ValueError(f"the synthetic grammar has more glosses than the {len(BRIGHT) * len(DARK)} colour pairs")
    fg, bg = BRIGHT[gloss_index % len(BRIGHT)], DARK[gloss_index // len(BRIGHT)]
    shape = (gloss_index + gloss_index // len(BRIGHT)) % 5
    direction = DIRECTIONS[(gloss_index // 2 + gloss_index // len(BRIGHT)) % 4]
    radius, travel, place = 0.26, 0.16, 0.08
    if variation:
        fg = (fg + rng.normal(0, 40 * variation, 3)).clip(0, 255)
        bg = (bg + rng.normal(0, 25 * variation, 3)).clip(0, 255)
        radius *= 1 + rng.uniform(-0.25, 0.25) * variation
        travel *= 1 + rng.uniform(-0.5, 0.5) * variation
        place *= 1 + variation
    step = np.linspace(-1, 1, n_frames)[:, None, None] * size * travel  # [n, 1, 1] travel along the direction
    jitter = rng.uniform(-place, place, 2) * size  # where this occurrence is signed
    y, x = np.mgrid[:size, :size] - (size - 1) / 2  # [size, size]
    mask = _shape_mask(shape, x - jitter[0] - direction[0] * step, y - jitter[1] - direction[1] * step, size * radius)
    return np.where(mask[..., None], fg, bg).astype(np.uint8)  # [n, size, size, 3]


def _render_blank(n_frames, size, rng):
    """Synthetic signs: non-sign frames, blocky grey noise [n, size, size, 3] (blocks survive the downscaling)."""
    noise = rng.normal(110, 40, (n_frames, 8, 8, 1)).clip(0, 255).astype(np.uint8)
    return noise.repeat(-(-size // 8), 1).repeat(-(-size // 8), 2)[:, :size, :size].repeat(3, 3)


def _synthetic_sentences(rng, n_train, n_dev, n_test):
    """Synthetic corpus: distinct (time, place, weather, temp) slot choices; dev/test combinations unseen, their
    words seen, in train."""
    def draw():
        temp = int(rng.integers(len(SYNTH_TEMP))) if rng.random() < SYNTH_TEMP_P else -1
        return (int(rng.integers(len(SYNTH_TIME))), int(rng.integers(len(SYNTH_PLACE))),
                int(rng.integers(len(SYNTH_WEATHER))), temp)

    n_all = len(SYNTH_TIME) * len(SYNTH_PLACE) * len(SYNTH_WEATHER) * (len(SYNTH_TEMP) + 1)
    if n_train + n_dev + n_test > n_all // 2:
        raise ValueError(f"make_synthetic: {n_train + n_dev + n_test} videos asked, the grammar has only {n_all} "
                         "sentences")
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
    time, place, (verb, rest), temp = (SYNTH_TIME[slots[0]], SYNTH_PLACE[slots[1]], SYNTH_WEATHER[slots[2]],
                                       SYNTH_TEMP[slots[3]] if slots[3] >= 0 else "")
    sentence = " ".join(w for w in (time, verb, place, rest, temp) if w)
    signs = [g for phrase in (time, place, temp, verb + " " + rest) for g in pseudogloss.extract(phrase)]
    if sorted(signs) != sorted(pseudogloss.extract(sentence)):
        raise RuntimeError(f"synthetic grammar: '{sentence}' tags as {pseudogloss.extract(sentence)}, "
                           f"its phrases as {signs}")
    return sentence, signs


# The generator's settings, by their --data names (data.SYNTHETIC): the README demo's corpus and a harder one for
# the study (study.py --corpus hard): a quarter of the training videos, longer noise between signs, signs of
# varying length and performance.
SETTINGS = {"synthetic": {}, "synthetic-hard": dict(n_train=150, blank_frames=(2, 5), sign_frames=(3, 6),
                                                   variation=1.0)}


DEFAULTS = dict(n_train=600, n_dev=60, n_test=80, frame_size=64, sign_frames=4, blank_frames=(1, 2), variation=0.0)


def make_synthetic(root: Path, seed: int = 0, **setting) -> Path:
    """Builds (once, cached) a PHOENIX14T-layout corpus of weather sentences signed as coloured moving patterns,
    and each split's sign timings (data.ground_truth_path). `setting` overrides DEFAULTS: n_train, n_dev,
    n_test videos; frame_size; sign_frames: frames per sign, or (min, max) drawn per sign; blank_frames:
    (min, max) noise frames between two signs; variation: how differently each occurrence of a sign is
    performed (0: only its place)."""
    unknown = set(setting) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"make_synthetic: unknown setting(s) {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
    s = {**DEFAULTS, **setting}
    sign_range = (s["sign_frames"],) * 2 if isinstance(s["sign_frames"], int) else tuple(s["sign_frames"])
    params = {"seed": seed, **s, "sign_frames": list(sign_range), "blank_frames": list(s["blank_frames"]),
              "version": 3}
    marker = Path(root) / "SYNTHETIC_COMPLETE.json"
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return Path(root)
    data.atomic_write(root, lambda tmp: _write_corpus(tmp, params))
    return Path(root)


def _write_corpus(root: Path, params: dict):
    """The corpus of make_synthetic's `params`, written into a new folder `root`, its marker last."""
    rng = np.random.default_rng(params["seed"])
    vocab = sorted({g for phrase in SYNTH_TIME + SYNTH_PLACE + SYNTH_TEMP + [" ".join(w) for w in SYNTH_WEATHER]
                    for g in pseudogloss.extract(phrase)})
    gloss_index = {g: i for i, g in enumerate(vocab)}
    size, (sign_lo, sign_hi), (blank_lo, blank_hi) = params["frame_size"], params["sign_frames"], params["blank_frames"]
    for split, sentences in _synthetic_sentences(rng, params["n_train"], params["n_dev"], params["n_test"]).items():
        data.annotation_path(root, split).parent.mkdir(parents=True, exist_ok=True)
        lines, timings = ["name|video|start|end|speaker|orth|translation"], ["name\tpseudogloss\tfirst\tlast"]
        for i, slots in enumerate(sentences):
            name = f"synthetic_{split}_{i:04d}"
            sentence, signs = _synthetic_text(slots)
            lines.append(f"{name}|{name}/1/*.png|-1|-1|Synthetic|{' '.join(s.upper() for s in signs)}|{sentence}")
            parts = [_render_blank(1, size, rng)]
            for k, sign in enumerate(signs):
                if k:  # non-sign frames between two signs
                    parts.append(_render_blank(int(rng.integers(blank_lo, blank_hi + 1)), size, rng))
                n = sign_lo  # drawn only for a range, so that the demo's corpus keeps its random stream
                if sign_hi > n:
                    n = int(rng.integers(n, sign_hi + 1))
                first = sum(len(p) for p in parts) + 1  # 1-based, as images%04d.png
                parts.append(_render_sign(gloss_index[sign], n, size, rng, params["variation"]))
                timings.append(f"{name}\t{sign}\t{first}\t{first + n - 1}")
            parts.append(_render_blank(1, size, rng))
            folder = root / data.FRAME_DIR / split / name
            folder.mkdir(parents=True)
            for t, frame in enumerate(np.concatenate(parts)):
                Image.fromarray(frame).save(folder / f"images{t + 1:04d}.png", compress_level=1)
        data.annotation_path(root, split).write_text("\n".join(lines) + "\n", encoding="utf-8")
        data.ground_truth_path(root, split).write_text("\n".join(timings) + "\n", encoding="utf-8")
    (root / "SYNTHETIC_COMPLETE.json").write_text(json.dumps(params))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, help="where to build the corpus (default: data/<setting>)")
    ap.add_argument("--setting", default="synthetic", choices=sorted(SETTINGS), help="the generator's setting")
    args = ap.parse_args()
    root = make_synthetic(args.root or Path("data") / args.setting, **SETTINGS[args.setting])
    print(f"synthetic corpus in {root}: " + ", ".join(f"{s} {len(data.read_split(root, s))}" for s in data.SPLITS))
