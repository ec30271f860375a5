"""How2Sign as released (English): <root>/sentence_level/{train,val,test}/text/en/raw_text/re_aligned/
how2sign_realigned_<split>.csv (tab-separated, CSV quoting: VIDEO_ID VIDEO_NAME SENTENCE_ID SENTENCE_NAME
START_REALIGNED END_REALIGNED SENTENCE) and <root>/sentence_level/<split>/rgb_front/raw_videos/<SENTENCE_NAME>.mp4.
`val` is read as dev; sentences without a clip (as in the release) are skipped and counted."""
import csv
import sys
from pathlib import Path

from harness import files

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


_SKIPS_REPORTED = set()


def read(root: Path, split: str) -> list[dict]:
    """How2Sign's realigned CSV (tab-separated, standard quoting); rows whose clip the release lacks are skipped,
    and their number said once per file."""
    path, clips = split_file(root, split), clips_folder(root, split)
    rows, missing = [], 0
    for line, r in files.read_table(path, "\t", ("SENTENCE_NAME", "SENTENCE"), quoting=csv.QUOTE_MINIMAL):
        video = files.inside(clips, r["SENTENCE_NAME"] + ".mp4", f"'{path}', line {line}")
        if video.is_file():
            rows.append((line, {"name": r["SENTENCE_NAME"], "translation": r["SENTENCE"], "video": video}))
        else:
            missing += 1
    if missing and not rows:
        raise FileNotFoundError(f"'{path}': none of its {missing} sentences has its clip <SENTENCE_NAME>.mp4 in "
                                f"'{clips}' (download the rgb_front clips into it)")
    if missing and (path, missing) not in _SKIPS_REPORTED:
        _SKIPS_REPORTED.add((path, missing))
        print(f"How2Sign {split} ({SPLIT[split]}): {missing} of {missing + len(rows)} sentences have no clip "
              f"in '{clips}' (as in the release): skipped", file=sys.stderr)
    return files.unique_rows(rows, path)

