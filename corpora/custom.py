"""Your own videos: <root>/{train,dev,test}.csv with header name|video|translation, '|'-separated, no quoting;
video is a video file (.mp4 .webm .mov .avi .mkv) or a folder of frames (.png .jpg ...), relative to the CSV's
folder. The layout names no language: --lang says it."""
from pathlib import Path

from corpora import files

LANG = None  # the layout does not say: --lang does


def detect(root: Path) -> bool:
    return any((root / f"{split}.csv").is_file() for split in ("train", "dev", "test"))


def split_file(root, split) -> Path:
    """A split of the custom layout: <root>/<split>.csv."""
    return Path(root) / f"{split}.csv"


def read(root: Path, split: str) -> list[dict]:
    path = split_file(root, split)
    rows = [(line, {"name": r["name"], "translation": r["translation"],
                    "video": files.inside(path.parent, r["video"], f"'{path}', line {line}")})
            for line, r in files.read_table(path, "|", ("name", "video", "translation"))]
    return files.unique_rows(rows, path)

