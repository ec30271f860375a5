"""A generated stand-in for PHOENIX14T, in the release's layout: German weather-report sentences, each
pseudo-gloss signed as its own coloured moving pattern, in sign order (not the sentence's word order), with
non-sign frames between signs (DESIGN.md "Synthetic corpus"). A model that learns the task translates it
well; one that does not stays near chance. Built once under data/<setting>, then read with `--data <setting>`:
synthetic-en holds English how-to sentences as mp4 clips in How2Sign's layout (one sentence without its clip, as
in the release), synthetic-zh Chinese daily-life sentences as JPEG frames in CSL-Daily's.

    python -m tools.synthetic [--setting synthetic|synthetic-hard|synthetic-en|synthetic-zh] [--root DIR]
"""
import argparse
import csv
import json
import math
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

import data
import pseudogloss
from corpora import files, how2sign


def ground_truth_path(root, split) -> Path:
    """Where a split's sign timings lie (synthetic corpora only, DESIGN.md "Synthetic corpus"): beside the
    annotations in PHOENIX14T's layout, at the root in How2Sign's and CSL-Daily's. A TSV with header name,
    pseudogloss, first, last; one row per sign, its first and last frame numbered from 1 in the video's frame
    order (images0001.png is 1; CSL-Daily's 000000.jpg and an mp4's first decoded frame are 1 too)."""
    manual = data.annotation_path(root, split)
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




ROOT = Path("data") / "synthetic"
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
# The English (How2Sign-like how-to sentences) and Chinese (CSL-Daily-like daily life) grammars: the slots'
# fillers in word order, the order the signer signs the slots in, and how the words join into a sentence.
# Every filler's content words are pseudo-glosses of the language's rule (nouns, pronouns, lexical verbs,
# adverbs, adjectives, numerals; pseudogloss.extract): a drawn sentence whose tagging differs from its
# phrases' is drawn again. One English filler carries quotes, which the release's CSV quotes.
EN_SLOTS = (["Now", "First", "Then", "Later", "Today", "Finally", "Again", "Tomorrow"],           # time
            ["I", "we", "you"],                                                                   # person
            ["cut", "wash", "fold", "paint", "hold", "open", "clean", "fill"],                     # verb
            ["the onion", "the paper", "the box", "the shirt", "the wall", "the bottle", "the door", "the bowl",
             'the "red" cup'],                                                                    # object
            ["with a knife", "with a brush", "with a towel", "slowly", "carefully"])             # manner, optional
ZH_SLOTS = (["今天", "明天", "昨天", "上午", "下午", "晚上", "周末"],                                  # time
            ["我", "你", "他", "我们", "妈妈", "老师", "朋友", "哥哥"],                                  # person
            ["学校", "医院", "公园", "银行", "超市", "图书馆", "北京", "饭店"],                            # place
            ["看书", "吃饭", "工作", "学习", "打球", "休息", "开会", "买菜"])                             # activity
GRAMMARS = {
    # "Now we cut the onion with a knife." signed NOW ONION WE CUT KNIFE (topic first)
    "en": dict(slots=EN_SLOTS, optional_p=1 / 3, sign_order=(0, 3, 1, 2, 4),
               join=lambda w: " ".join(x for x in w if x)[:1].upper() + " ".join(x for x in w if x)[1:] + "."),
    # "明天我在学校看书" (tomorrow I at school read) signed 明天 学校 我 看书 (place before person)
    "zh": dict(slots=ZH_SLOTS, optional_p=None, sign_order=(0, 2, 1, 3),
               join=lambda w: w[0] + w[1] + "在" + w[2] + w[3]),
}
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
    return _draw_splits(draw, n_all, (n_train, n_dev, n_test))


def _draw_splits(draw, n_all: int, counts, valid=None) -> dict:
    """split -> distinct slot tuples from draw(); a dev/test tuple's every filler occurs in train; tuples
    failing valid(slots) (a grammar's tagging check) are drawn again."""
    if sum(counts) > n_all // 2:
        raise ValueError(f"make_synthetic: {sum(counts)} videos asked, the grammar has only {n_all} sentences")
    splits, taken = {}, set()
    for split, n in zip(data.SPLITS, counts):
        chosen = []
        for _ in range(200 * n + 1000):
            if len(chosen) == n:
                break
            slots = draw()
            seen = split == "train" or all(any(c[k] == slots[k] for c in splits["train"]) for k in range(len(slots)))
            if slots in taken or not seen:
                continue
            taken.add(slots)
            if valid is None or valid(slots):
                chosen.append(slots)
        if len(chosen) < n:
            raise ValueError(f"make_synthetic: could not draw {n} {split} sentences whose words all occur in train; "
                             "use more training videos")
        splits[split] = chosen
    return splits


def _grammar_sentences(lang, rng, counts) -> dict:
    """split -> [(sentence, its pseudo-glosses in sign order, its words)] of the English or Chinese grammar."""
    slots, p = GRAMMARS[lang]["slots"], GRAMMARS[lang]["optional_p"]

    def draw():  # the last slot is left out (-1) with probability 1 - p where it is optional
        last = -1 if p is not None and rng.random() >= p else int(rng.integers(len(slots[-1])))
        return tuple(int(rng.integers(len(s))) for s in slots[:-1]) + (last,)

    n_all = math.prod(len(s) for s in slots[:-1]) * (len(slots[-1]) + (p is not None))
    splits = _draw_splits(draw, n_all, counts, valid=lambda c: _grammar_text(lang, c) is not None)
    return {split: [_grammar_text(lang, c) for c in chosen] for split, chosen in splits.items()}


def _grammar_text(lang, choice):
    """(sentence, pseudo-glosses in sign order, the slots' words) of one slot choice, or None where the tagger
    reads the sentence otherwise than its phrases (the signs must be the sentence's pseudo-glosses)."""
    g = GRAMMARS[lang]
    words = [g["slots"][k][i] if i >= 0 else "" for k, i in enumerate(choice)]
    sentence = g["join"](words)
    signs = [x for k in g["sign_order"] if words[k] for x in pseudogloss.extract(words[k], lang=lang)]
    ok = sorted(signs) == sorted(pseudogloss.extract(sentence, lang=lang))
    return (sentence, signs, [w for w in words if w]) if ok else None


def grammar_vocabulary(lang) -> list:
    """Every pseudo-gloss the grammar of `lang` can sign, sorted: each has its own colours and shape."""
    if lang == "de":
        phrases = SYNTH_TIME + SYNTH_PLACE + SYNTH_TEMP + [" ".join(w) for w in SYNTH_WEATHER]
        return sorted({g for phrase in phrases for g in pseudogloss.extract(phrase)})
    fillers = [f for slot in GRAMMARS[lang]["slots"] for f in slot]
    return sorted({g for f in fillers for g in pseudogloss.extract(f, lang=lang)})


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


# The generator's settings: the README demo's corpus and a harder one for the study (tools.study --corpus hard):
# a quarter of the training videos, longer noise between signs, signs of varying length and performance;
# the English and Chinese corpora in How2Sign's and CSL-Daily's layouts (make_corpus).
SETTINGS = {"synthetic": {}, "synthetic-hard": dict(n_train=150, blank_frames=(2, 5), sign_frames=(3, 6),
                                                   variation=1.0),
            "synthetic-en": dict(lang="en"), "synthetic-zh": dict(lang="zh")}


def _render_video(signs, gloss_index, frame_size, rng, sign_range=(4, 4), blank_frames=(1, 2), variation=0.0):
    """One video: a noise frame, the signs in order with blank_frames noise frames between two, a noise frame.
    Returns the frames uint8 [N, size, size, 3] and [(sign, first, last)] (1-based, inclusive)."""
    parts, timings = [_render_blank(1, frame_size, rng)], []
    for k, sign in enumerate(signs):
        if k:  # non-sign frames between two signs
            parts.append(_render_blank(int(rng.integers(blank_frames[0], blank_frames[1] + 1)), frame_size, rng))
        n = sign_range[0]  # drawn only for a range, so that the demo's corpus keeps its random stream
        if sign_range[1] > n:
            n = int(rng.integers(n, sign_range[1] + 1))
        first = sum(len(p) for p in parts) + 1  # 1-based, as images%04d.png
        parts.append(_render_sign(gloss_index[sign], n, frame_size, rng, variation))
        timings.append((sign, first, first + n - 1))
    parts.append(_render_blank(1, frame_size, rng))
    return np.concatenate(parts), timings


def _build_once(root: Path, params: dict, write) -> Path:
    """Builds a corpus with write(folder) into a new folder that replaces root whole (files.atomic_write), its
    marker SYNTHETIC_COMPLETE.json last; nothing is done when root already holds the build of these params."""
    root = Path(root)
    marker = root / "SYNTHETIC_COMPLETE.json"
    if marker.is_file() and json.loads(marker.read_text()) == params:
        return root

    def build(tmp: Path):
        tmp.mkdir(parents=True)
        write(tmp)
        (tmp / "SYNTHETIC_COMPLETE.json").write_text(json.dumps(params))
    files.atomic_write(root, build)
    return root


def _write_timings(path: Path, timings: dict):
    """The sign timings TSV (ground_truth_path) of one split: name -> [(sign, first, last)]."""
    rows = ["name\tpseudogloss\tfirst\tlast"] + [f"{name}\t{g}\t{a}\t{b}" for name, signs in timings.items()
                                                 for g, a, b in signs]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


DEFAULTS = dict(n_train=600, n_dev=60, n_test=80, frame_size=64, sign_frames=4, blank_frames=(1, 2), variation=0.0)


def make_synthetic(root: Path, seed: int = 0, **setting) -> Path:
    """Builds (once, cached) a PHOENIX14T-layout corpus of weather sentences signed as coloured moving patterns,
    and each split's sign timings (synthetic.ground_truth_path). `setting` overrides DEFAULTS: n_train, n_dev,
    n_test videos; frame_size; sign_frames: frames per sign, or (min, max) drawn per sign; blank_frames:
    (min, max) noise frames between two signs; variation: how differently each occurrence of a sign is
    performed (0: only its place)."""
    unknown = set(setting) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"make_synthetic: unknown setting(s) {sorted(unknown)}; known: {', '.join(DEFAULTS)}")
    opts = {**DEFAULTS, **setting}
    sign_range = (opts["sign_frames"],) * 2 if isinstance(opts["sign_frames"], int) else tuple(opts["sign_frames"])
    params = {"seed": seed, **opts, "sign_frames": list(sign_range), "blank_frames": list(opts["blank_frames"]),
              "version": 3}
    n_train, n_dev, n_test, frame_size = opts["n_train"], opts["n_dev"], opts["n_test"], opts["frame_size"]
    blank_frames, variation = opts["blank_frames"], opts["variation"]

    def write(tmp):
        rng = np.random.default_rng(seed)
        gloss_index = {g: i for i, g in enumerate(grammar_vocabulary("de"))}
        for split, sentences in _synthetic_sentences(rng, n_train, n_dev, n_test).items():
            (tmp / "annotations" / "manual").mkdir(parents=True, exist_ok=True)
            lines, timings = ["name|video|start|end|speaker|orth|translation"], {}
            for i, slots in enumerate(sentences):
                name = f"synthetic_{split}_{i:04d}"
                sentence, signs = _synthetic_text(slots)
                lines.append(f"{name}|{name}/1/*.png|-1|-1|Synthetic|{' '.join(s.upper() for s in signs)}|{sentence}")
                frames, timings[name] = _render_video(signs, gloss_index, frame_size, rng, sign_range, blank_frames,
                                                      variation)
                folder = tmp / data.FRAME_DIR / split / name
                folder.mkdir(parents=True)
                for t, frame in enumerate(frames):
                    Image.fromarray(frame).save(folder / f"images{t + 1:04d}.png", compress_level=1)
            data.annotation_path(tmp, split).write_text("\n".join(lines) + "\n", encoding="utf-8")
            _write_timings(ground_truth_path(tmp, split), timings)
    return _build_once(root, params, write)


# How2Sign's release (https://how2sign.github.io; how2sign.split_file, how2sign_clips): per split (its dev split is
# `val`) the sentence clips, the full-length videos and the realigned sentences, a tab-separated CSV with standard
# quoting; some sentences have no clip.
HOW2SIGN_COLUMNS = ("VIDEO_ID", "VIDEO_NAME", "SENTENCE_ID", "SENTENCE_NAME", "START_REALIGNED", "END_REALIGNED",
                    "SENTENCE")
HOW2SIGN_FPS = 24


def write_mp4(path, frames, fps=HOW2SIGN_FPS):
    """frames uint8 [N, H, W, 3] as an H.264 mp4 (PyAV, yuv420p, near-lossless crf 10)."""
    import av  # only the mp4 corpus needs PyAV here
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options={"crf": "10"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode())


def _write_how2sign(tmp: Path, split: str, items: list, render) -> dict:
    """One split in How2Sign's layout: four sentences per source video, each sentence's clip an mp4, and the
    full-length videos (video_level/) that the realigned times point into: each sentence starts on a multiple of
    6 frames (a time exact in the CSV's two decimals) after a 12-frame black pause, and its end time is rounded
    down, so that the realigned times cut exactly its clip's frames. The last training sentence keeps its CSV row
    but has no clip, as some do in the release. Returns its timings."""
    clips, csv_path = how2sign.clips_folder(tmp, split), how2sign.split_file(tmp, split)
    videos = tmp / "video_level" / how2sign.SPLIT[split] / "rgb_front" / "raw_videos"
    for folder in (clips, csv_path.parent, videos):
        folder.mkdir(parents=True)
    timings, full = {}, []
    with open(csv_path, "w", encoding="utf-8", newline="") as f:
        out = csv.writer(f, delimiter="\t", lineterminator="\n")
        out.writerow(HOW2SIGN_COLUMNS)
        for i, (sentence, signs) in enumerate(items):
            video_id = f"-s{split[:2]}{i // 4:07d}"  # 11 characters, some YouTube ids start with '-'
            name = f"{video_id}_{i % 4}-1-rgb_front"
            frames, spans = render(signs)
            first = -(-(len(full) + 12) // 6) * 6 if full else 0
            full += [np.zeros_like(frames[0])] * (first - len(full)) + list(frames)
            end = math.floor((first + len(frames)) / HOW2SIGN_FPS * 100) / 100
            out.writerow([video_id, f"{video_id}-1-rgb_front", f"{video_id}_{i % 4}", name,
                          f"{first / HOW2SIGN_FPS:.2f}", f"{end:.2f}", sentence])
            if i % 4 == 3 or i == len(items) - 1:
                write_mp4(videos / f"{video_id}-1-rgb_front.mp4", np.stack(full))
                full = []
            if split == "train" and i == len(items) - 1 and i > 0:
                continue  # no clip for this sentence
            write_mp4(clips / f"{name}.mp4", frames)
            timings[name] = spans
    return timings


def _write_csl_daily(tmp: Path, splits: dict, render) -> dict:
    """CSL-Daily's layout: frames sentence/frames_512x512/<name>/000000.jpg ..., the label pickle
    sentence_label/csl2020ct_v2.pkl (`info`: one dict per sentence, with its fields) and
    sentence_label/split_1.txt (`name|split`). Returns split -> its timings."""
    labels = tmp / "sentence_label"
    labels.mkdir(parents=True)
    info, lines, timings = [], ["name|split"], {}
    for split, items in splits.items():
        timings[split] = {}
        for sentence, signs, words in items:
            name = f"S{len(info):06d}_P{len(info) % 10:04d}_T00"
            frames, timings[split][name] = render(signs)
            folder = tmp / "sentence" / "frames_512x512" / name
            folder.mkdir(parents=True)
            for t, frame in enumerate(frames):
                Image.fromarray(frame).save(folder / f"{t:06d}.jpg", quality=95)
            info.append({"name": name, "length": len(frames), "label_gloss": signs, "label_char": list(sentence),
                         "label_word": words, "signer": len(info) % 10, "time": 0})
            lines.append(f"{name}|{split}")
    maps = {k: sorted({x for d in info for x in d[f"label_{k}"]}) for k in ("gloss", "char", "word")}
    with open(labels / "csl2020ct_v2.pkl", "wb") as f:
        pickle.dump({"info": info, **{f"{k}_map": v for k, v in maps.items()}}, f)
    (labels / "split_1.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return timings


def make_corpus(root: Path, lang: str, seed: int = 0, n_train: int = 300, n_dev: int = 40, n_test: int = 50,
                frame_size: int = 64) -> Path:
    """Builds (once, cached) the English corpus (lang "en": mp4 clips in How2Sign's layout) or the Chinese one
    ("zh": JPEG frames in CSL-Daily's layout) of GRAMMARS, signed as make_synthetic signs, with each split's
    sign timings (ground_truth_path)."""
    if lang not in GRAMMARS:
        raise ValueError(f"make_corpus: no grammar for language '{lang}' (known: {', '.join(sorted(GRAMMARS))})")
    params = {"lang": lang, "seed": seed, "n_train": n_train, "n_dev": n_dev, "n_test": n_test,
              "frame_size": frame_size, "version": 2}

    def write(tmp):
        rng = np.random.default_rng(seed)
        gloss_index = {g: i for i, g in enumerate(grammar_vocabulary(lang))}
        splits = _grammar_sentences(lang, rng, (n_train, n_dev, n_test))
        render = lambda signs: _render_video(signs, gloss_index, frame_size, rng)  # noqa: E731
        if lang == "en":
            timings = {split: _write_how2sign(tmp, split, [(t, g) for t, g, _ in items], render)
                       for split, items in splits.items()}
        else:  # CSL-Daily's label_word: the grammar's words, 在 between person and place
            words = {s: [(t, g, w[:2] + ["在"] + w[2:]) for t, g, w in items] for s, items in splits.items()}
            timings = _write_csl_daily(tmp, words, render)
        for split, spans in timings.items():
            _write_timings(ground_truth_path(tmp, split), spans)
    return _build_once(root, params, write)


def build_setting(name: str, root: Path = None) -> Path:
    """One of SETTINGS built (once) at root (default data/<name>)."""
    root = root or ROOT.parent / name
    opts = SETTINGS[name]
    return make_corpus(root, **opts) if "lang" in opts else make_synthetic(root, **opts)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, help="where to build the corpus (default: data/<setting>)")
    ap.add_argument("--setting", default="synthetic", choices=sorted(SETTINGS), help="the generator's setting")
    args = ap.parse_args()
    root = build_setting(args.setting, args.root)
    print(f"synthetic corpus in {root}: " + ", ".join(f"{s} {len(data.read_split(root, s))}" for s in data.SPLITS))

