"""Frame packs (DESIGN.md "Data"): each split once as one memory-mapped stream of JPEGs, because decoding ~100
small PNG files a video is too slow to keep a GPU busy. <packed-dir>/<split>/ holds frames.bin (the JPEGs back
to back), offsets.npy (int64 [N + 1], byte offsets of the N frames) and index.json (video names, frame counts,
each video's frame size before any resize, which the augmentation needs, each video's source fingerprint, and
settings). A pack is made only where no dataset lies, and replaces only a pack; a video changed since it was
packed makes the pack stale (rebuilt by the packing command, refused by training)."""
import hashlib
import io
import json
import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from corpora import decode, files

PACK_VERSION = 3  # 3: each video's source fingerprint (sources)
PACK_FILES = ("frames.bin", "offsets.npy", "index.json")


def packed_path(root, split, packed_dir=None) -> Path:
    """A split's pack folder, <packed_dir or <root>/packed>/<split>."""
    return (Path(packed_dir) if packed_dir else Path(root) / "packed") / split


def pack_command(root, split, packed_dir=None) -> str:
    """The command that (re)builds a split's pack, for error messages."""
    return (f"python -m tools.prepare --pack --data {root} --splits {split}"
            + (f" --packed-dir {packed_dir}" if packed_dir else ""))


def destination_problem(root, split, rows, packed_dir=None) -> str:
    """Why a split's pack may not be written at <packed-dir>/<split> ('' if it may): --packed-dir is not a
    folder; the pack folder is the dataset root, holds it, lies in a folder of the split's videos or holds one
    (it would replace the frames); or it exists and holds what no pack holds (a folder this project did not
    make). Checked before anything is written."""
    folder = packed_path(root, split, packed_dir)
    if packed_dir and os.path.lexists(packed_dir) and not Path(packed_dir).is_dir():
        return f"--packed-dir '{packed_dir}' exists and is not a folder: pass a folder (a new one is made)"
    if os.path.lexists(folder) and (os.path.islink(folder) or not folder.is_dir()):
        return f"'{folder}' exists and is not a pack folder (a file or a link): pass another --packed-dir"
    where, top = folder.resolve(), Path(root).resolve()
    if where == top or where in top.parents:  # inside the root is where packs go by default (<root>/packed)
        return f"the pack folder '{folder}' would replace the dataset root '{top}': pass another --packed-dir"
    for holder in sorted({v if v.is_dir() else v.parent for v in (r["video"].resolve() for r in rows)}):
        if where == holder or holder in where.parents or where in holder.parents:
            how = "lie in" if holder in where.parents else "replace"
            return (f"the pack folder '{folder}' would {how} the folder of the split's videos '{holder}': pass a "
                    "--packed-dir apart from the videos")
    foreign = sorted(set(os.listdir(folder)) - set(PACK_FILES)) if folder.is_dir() else []
    if foreign:
        return (f"'{folder}' holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, which no pack "
                "holds: it is not a pack this project made, and is left as it is; pass another --packed-dir")
    return ""


def fingerprint(row) -> str:
    """What a video was packed from: sha256 of its frame files' names, sizes and mtimes (a frame folder), or of
    its file's size and mtime and the sentence's times (a video file); '' for a video not there."""
    video, digest = Path(row["video"]), hashlib.sha256()
    if video.is_dir():
        with os.scandir(video) as entries:
            for e in sorted(entries, key=lambda e: e.name):
                st = e.stat()
                digest.update(f"{e.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    elif video.is_file():
        st = video.stat()
        digest.update(f"{st.st_size}\0{st.st_mtime_ns}\0{row.get('start')}\0{row.get('end')}".encode())
    else:
        return ""
    return digest.hexdigest()


def stale_videos(folder: Path, rows: list) -> list[str]:
    """The videos of `rows` (their names) whose source changed since the intact pack in `folder` was made, or
    that it lacks; a video whose source is gone (frames deleted after packing) is read from the pack as is."""
    meta = json.loads((Path(folder) / "index.json").read_text())
    packed = dict(zip(meta["names"], meta["sources"]))
    with ThreadPoolExecutor(8) as pool:  # mostly waiting for the disk: one stat per frame file
        now = list(pool.map(fingerprint, rows))
    return [r["name"] for r, f in zip(rows, now) if r["name"] not in packed or (f and f != packed[r["name"]])]


def _encode_video(job) -> tuple:
    """One video's frames (a frame folder's in natural name order, or a video file's, decoded at the pack's size,
    between the sentence's start and end times where given) as JPEG bytes, and the frames' [height, width] before
    the resize (runs in a pool worker)."""
    video, quality, resize, start, end = job
    video, size = Path(video), (resize, resize) if resize else None
    if video.is_file():  # a sentence of a full-length video is cut here, once, by its times
        frames, source = decode.iter_video(video, size, None, None, start, end), decode.video_file_size(video)
    else:
        paths = decode.frame_files(video)
        if not paths:
            raise FileNotFoundError(f"video folder '{video}' has no images (missing or empty)")
        frames = (decode.read_frame(path, size) for path in paths)  # PIL's bilinear: antialiased, like the loader's
        source = list(decode.frame_size(paths[0]))[::-1]
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
        assert len(names) == len(counts) and all(type(c) is int and c > 0 for c in counts)
    except (ValueError, KeyError, TypeError, AssertionError, UnicodeDecodeError):
        return "index.json is damaged (not the JSON index of a pack)"
    if meta.get("version") != PACK_VERSION:
        return f"index.json is of pack format {meta.get('version')}, not {PACK_VERSION}"
    why = _index_problem(meta)
    if why:
        return f"index.json is damaged ({why})"
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


def _index_problem(meta: dict) -> str:
    """What is wrong with a version's index.json beyond its counts ('' if nothing): video names distinct
    strings; a frame size [height, width] of positive whole numbers and a source fingerprint for each."""
    names, sizes, sources = meta["names"], meta.get("sizes"), meta.get("sources")
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        return "its video names are not distinct names"
    for field, value in (("sizes", sizes), ("sources", sources)):
        if not isinstance(value, list) or len(value) != len(names):
            return f"{field} is not a list of one entry per video"
    bad = next((i for i, hw in enumerate(sizes) if not isinstance(hw, list) or len(hw) != 2
                or not all(type(x) is int and x > 0 for x in hw)), None)
    if bad is not None:
        return f"the frame size of video '{names[bad]}' is {sizes[bad]!r}, not [height, width] in pixels"
    if not all(isinstance(f, str) for f in sources):
        return "sources holds an entry that is not a fingerprint"
    return ""


def _pack_complete(folder: Path, names: list, settings: dict) -> bool:
    """Whether `folder` is an intact, finished pack of exactly these videos with these settings."""
    if pack_problems(folder):
        return False
    meta = json.loads((folder / "index.json").read_text())
    return meta["names"] == names and all(meta.get(k) == v for k, v in settings.items())


def pack_split(root, split, rows, packed_dir=None, quality: int = 93, resize: int = None, workers: int = None) -> Path:
    """Re-encode a split's frames (`rows`, data.read_split's: frame folders or video files) as JPEG (quality 93;
    optionally resized to resize x resize) into one file; skipped when already packed from these videos as they
    are (rebuilt when stale); refused where destination_problem says; built under a temporary name and renamed, so
    never left half-written. A build that fails removes its temporary folder, and the ones that interrupted builds
    (their process gone) left behind are removed first."""
    root = Path(root)
    folder = packed_path(root, split, packed_dir)
    names = [r["name"] for r in rows]  # unique (read_split refuses duplicates), in the annotation file's order
    settings = {"version": PACK_VERSION, "quality": quality, "resize": resize}
    problem = destination_problem(root, split, rows, packed_dir)
    if problem:
        raise ValueError(problem)
    for name in files.remove_stale_temporaries(folder):  # also beside a finished pack, which returns next
        print(f"{split}: removed '{folder.parent / name}', left by an interrupted pack", flush=True)
    if any("start" in r for r in rows):  # cut from full-length videos: never taken for a pack of the clips
        settings["cut"] = "realigned"
    if _pack_complete(folder, names, settings):
        stale = stale_videos(folder, rows)
        if not stale:
            return folder
        print(f"{split}: the pack in '{folder}' is stale (video '{stale[0]}'"
              + (f" and {len(stale) - 1} more" if len(stale) > 1 else "") + " changed since it was packed): "
              "rebuilding it", flush=True)
    files.atomic_write(folder, lambda tmp: _write_pack(tmp, rows, settings, workers))
    return folder


def _write_pack(folder: Path, rows: list, settings: dict, workers: int = None):
    """The pack of a split's videos (read_split's `rows`), written into a new `folder`."""
    folder.mkdir()
    jobs = [(r["video"], settings["quality"], settings["resize"], r.get("start"), r.get("end")) for r in rows]
    sources = [fingerprint(r) for r in rows]  # before the frames are read: a change while packing makes it stale
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
    (folder / "index.json").write_text(json.dumps({**settings, "names": names, "counts": counts, "sizes": sizes,
                                                   "sources": sources}))


class Pack:
    """Reads selected frames of a video from a split's pack; memory-maps frames.bin lazily, so that
    each DataLoader worker maps it itself (pickling the dataset never copies the file)."""

    def __init__(self, folder: Path, command: str = "python -m tools.prepare --pack --data ROOT --splits SPLIT"):
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

