"""How2Sign as released (English): <root>/sentence_level/{train,val,test}/text/en/raw_text/re_aligned/
how2sign_realigned_<split>.csv (tab-separated, CSV quoting: VIDEO_ID VIDEO_NAME SENTENCE_ID SENTENCE_NAME
START_REALIGNED END_REALIGNED SENTENCE) and <root>/sentence_level/<split>/rgb_front/raw_videos/<SENTENCE_NAME>.mp4.
`val` is read as dev; sentences without a clip (as in the release) are skipped and counted.

The released clips were cut by the original times, while the realigned sentences' START_REALIGNED and
END_REALIGNED (seconds) refer to the full-length videos. Where those are present, as the download script unzips
them (<root>/video_level/<split>/rgb_front/raw_videos/<VIDEO_NAME>.mp4), each sentence is cut from its video by
the realigned times instead (once, by `python -m tools.prepare --pack`, or by the loader when not packed); a
sentence whose video is missing, whose times run past its video's end (how2sign-data #9) or hold no frame is
skipped and counted; a time that is not a finite number of seconds, 0 or more, is an error naming its line."""
import csv
import functools
import math
import os
import sys
from pathlib import Path

from corpora import decode, files

LANG = "en"
SPLIT = {"train": "train", "dev": "val", "test": "test"}


def detect(root: Path) -> bool:
    return (root / "sentence_level").is_dir()


def split_file(root, split) -> Path:
    """How2Sign's realigned sentences of a split (our dev is its val)."""
    s = SPLIT[split]
    return Path(root) / "sentence_level" / s / "text" / "en" / "raw_text" / "re_aligned" / f"how2sign_realigned_{s}.csv"


def clips_folder(root, split) -> Path:
    """The folder of a How2Sign split's sentence clips: rgb_front/raw_videos/ as the download script unzips them
    (rgb_front/ itself where the clips lie directly in it)."""
    front = Path(root) / "sentence_level" / SPLIT[split] / "rgb_front"
    return front / "raw_videos" if (front / "raw_videos").is_dir() or not front.is_dir() else front


def videos_folder(root, split) -> Path:
    """The folder of a How2Sign split's full-length videos: video_level/<split>/rgb_front/raw_videos/ as the
    download script unzips them (rgb_front/ itself where the videos lie directly in it)."""
    front = Path(root) / "video_level" / SPLIT[split] / "rgb_front"
    return front / "raw_videos" if (front / "raw_videos").is_dir() or not front.is_dir() else front


def sources(root: Path, split: str) -> list:
    """What a split's rows depend on besides its CSV: which full-length videos and clips are there (the folders'
    listings; data.read_split reads again when one changes)."""
    return [root / "video_level", videos_folder(root, split), clips_folder(root, split)]


_SKIPS_REPORTED = set()
END_TOLERANCE = 0.01  # seconds: the CSV's precision; an end time beyond the video by more runs past it


def read(root: Path, split: str) -> list[dict]:
    """How2Sign's realigned CSV (tab-separated, standard quoting): a sentence's video is its full-length video with
    its realigned times (start, end in the row) where the full-length videos are present, else its clip; rows
    whose clip or video is missing, or whose times run past the video's end, are skipped, and their numbers said
    once per file, with which videos were read."""
    path, full = split_file(root, split), videos_folder(root, split)
    folder = full if full.is_dir() else clips_folder(root, split)
    rows, skipped = [], {"missing": 0, "past the end": 0, "empty": 0, "no frame": 0}
    for line, r in files.read_table(path, "\t", ("SENTENCE_NAME", "SENTENCE"), quoting=csv.QUOTE_MINIMAL):
        where = f"'{path}', line {line}"
        row = {"name": r["SENTENCE_NAME"], "translation": r["SENTENCE"]}
        if full.is_dir():
            row["video"] = files.inside(folder, _field(r, "VIDEO_NAME", where) + ".mp4", where)
            row["start"], row["end"] = (_seconds(r, k, where) for k in ("START_REALIGNED", "END_REALIGNED"))
        else:
            row["video"] = files.inside(folder, r["SENTENCE_NAME"] + ".mp4", where)
        problem = _problem(row)
        if problem:
            skipped[problem] += 1
        else:
            rows.append((line, row))
    kind = "video" if full.is_dir() else "clip"
    if skipped["missing"] and not rows:
        raise FileNotFoundError(f"'{path}': none of its {skipped['missing']} sentences has its {kind} in '{folder}' "
                                f"(download the rgb_front {'videos' if full.is_dir() else 'clips'} into it)")
    _report(split, path, folder, full.is_dir(), len(rows), skipped)
    return files.unique_rows(rows, path)


def _field(r: dict, key: str, where: str) -> str:
    if not (r.get(key) or "").strip():
        raise ValueError(f"{where}: empty or missing {key} (needed to cut the sentence from its full-length video)")
    return r[key]


def _seconds(r: dict, key: str, where: str) -> float:
    """A realigned time, refused unless a finite number of seconds, 0 or more (nan, inf, -5 are no times)."""
    try:
        t = float(_field(r, key, where))
    except ValueError:
        t = math.nan
    if not (math.isfinite(t) and t >= 0):
        raise ValueError(f"{where}: {key} '{r.get(key)}' is not a time in seconds (a finite number, 0 or more)")
    return t


def _problem(row: dict) -> str:
    """Why a sentence is skipped: "missing" (no clip or video file), "empty" (its realigned end is not after its
    start), "past the end" (its realigned times run past its video's end), "no frame" (no frame is shown between
    its times, by its video's frame rate), or '' (nothing)."""
    if not row["video"].is_file():
        return "missing"
    if "end" in row and row["end"] <= row["start"]:
        return "empty"
    if "end" in row:
        stat = os.stat(row["video"])
        duration, rate, first = _timing(str(row["video"]), stat.st_mtime_ns, stat.st_size)
        if duration is not None and row["end"] > duration + END_TOLERANCE:
            return "past the end"
        if rate and not _holds_a_frame(row["start"], row["end"], rate, first):
            return "no frame"
    return ""


def _holds_a_frame(start: float, end: float, rate: float, first: float) -> bool:
    """Whether a frame time first + k / rate falls from `start` up to before `end` (decode.iter_video's window)."""
    k = math.ceil(round((start - decode.TIME_EPSILON - first) * rate, 6))
    return first + max(k, 0) / rate < end - decode.TIME_EPSILON


@functools.lru_cache(maxsize=None)
def _timing(path: str, mtime_ns: int, size: int) -> tuple:
    """A full-length video's (duration, frame rate, first time), read from its header once per file version (a
    video holds ~12 sentences)."""
    try:
        return decode.video_timing(path)
    except Exception:  # not a video: the check before training names it
        return None, None, 0.0


def _report(split: str, path: Path, folder: Path, full: bool, n: int, skipped: dict):
    """Says once per annotation file (and counts) which videos were read, and how many sentences were skipped."""
    if (path, n, tuple(skipped.values())) in _SKIPS_REPORTED:
        return
    _SKIPS_REPORTED.add((path, n, tuple(skipped.values())))
    total = n + sum(skipped.values())
    if full:
        print(f"How2Sign {split} ({SPLIT[split]}): {n} of {total} sentences cut from the full-length videos in "
              f"'{folder}' by their realigned times; skipped: {skipped['missing']} without their video, "
              f"{skipped['past the end']} past their video's end, {skipped['empty']} ending before they start, "
              f"{skipped['no frame']} holding no frame (shorter than a frame's interval)",
              file=sys.stderr)
    elif skipped["missing"]:
        print(f"How2Sign {split} ({SPLIT[split]}): {skipped['missing']} of {total} sentences have no clip "
              f"in '{folder}' (as in the release): skipped; the {n} others read from the released clips "
              "(cut by the original times; the realigned times need the full-length videos)", file=sys.stderr)
    else:
        print(f"How2Sign {split} ({SPLIT[split]}): {n} sentences read from the released clips in '{folder}'",
              file=sys.stderr)
