"""The check before training: every video that a run will read, cheaply (frame headers, a video file's first
frame) or in full, or its split's pack; the problems listed with the file they concern."""
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from corpora import decode, pack


def check_videos(root, splits: dict, packed=False, packed_dir=None, limit: int = 20, full: bool = False,
                 first_frame: bool = False, verified=()) -> list[str]:
    """Every video of `splits` (split -> data.read_split's rows), checked before training: a frame folder's every
    frame file by its header (an image of one size throughout), a video file by opening its container and reading
    its video stream's header (first_frame=True also decodes its first frame: `tools.prepare --check`, as
    decoding a 1280x720 frame of each of How2Sign's 32,787 clips took over two minutes of every start-up);
    full=True decodes everything. The PNG frames of the splits in `verified` are read whole and their checksums
    checked (PIL's verify, no decoding): a frame damaged inside, header and end intact, would otherwise stop the
    run when validation first reads it. With packed=True, its split's pack is intact and holds it. Returns the
    problems, at most `limit` listed and then a count of the rest."""
    problems = []
    for split, rows in splits.items():
        if packed:
            problems += _pack_check(root, split, packed_dir, rows)
            continue
        missing_dirs = sorted({str(r["video"].parent) for r in rows if not r["video"].parent.is_dir()})
        problems += [f"folder '{d}' (where videos of {split} lie) is missing" for d in missing_dirs]
        # each file once: How2Sign's full-length videos hold about 12 sentences each
        videos = list(dict.fromkeys(r["video"] for r in rows if r["video"].parent.is_dir()))
        with ThreadPoolExecutor(8) as pool:  # mostly waiting for the disk: threads overlap the reads
            whole = split in verified
            problems += [p for p in pool.map(lambda v: video_problem(v, full, first_frame, whole), videos) if p]
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more"]
    return problems


def _pack_check(root, split, packed_dir, rows) -> list[str]:
    """The problems of a split's pack: damaged, lacking videos of the annotation file (`rows`), or stale."""
    names = [r["name"] for r in rows]
    folder, command = pack.packed_path(root, split, packed_dir), pack.pack_command(root, split, packed_dir)
    damage = pack.pack_problems(folder)
    if damage:
        return [f"frame pack '{folder}': {damage}; (re)build it with `{command}`"]
    packed_names = set(json.loads((folder / "index.json").read_text())["names"])
    missing = [f"video '{n}' is not in frame pack '{folder}' (packed from another annotation file?): "
               f"rebuild it with `{command}`" for n in names if n not in packed_names]
    stale = [n for n in pack.stale_videos(folder, rows) if n in packed_names]
    return missing + [f"frame pack '{folder}' is stale: video '{n}' changed since it was packed (its frames differ, "
                      f"or the pack is another dataset's): rebuild it with `{command}`" for n in stale]


def _verify(frame: str):
    """ValueError naming a PNG frame whose chunks do not match their CRC-32 checksums (read whole, not decoded)."""
    try:
        with Image.open(frame) as im:
            im.verify()
    except (OSError, SyntaxError) as e:
        raise ValueError(f"frame '{frame}' is damaged: its data does not match its checksums ({e}): replace it, or "
                         "remove its video from the split") from None


def video_problem(video: Path, full: bool = False, first_frame: bool = True, verify: bool = False) -> str:
    """What keeps a video (frame folder or video file) from being read ('' if nothing); a video file is decoded
    (its first frame, or all with full=True) unless first_frame=False: then its stream header is read; verify=True
    checks a PNG frame's every checksum."""
    if video.is_dir():
        files = [os.path.join(video, n) for n in decode.frame_names(video)]  # strings: 2.5M Paths cost seconds
        if not files:
            return f"video folder '{video}' has no images (frames: {', '.join(sorted(decode.IMAGE_SUFFIXES))})"
        sizes = {}
        for f in files:
            try:
                sizes[f] = decode.frame_size(f, full, whole=not full)  # header and end in one open
                decode.check_pixels(f, sizes[f])
                if verify and not full and f.lower().endswith(".png"):
                    _verify(f)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                return str(e) if str(e).startswith("frame '") else f"frame '{f}' cannot be read: {e}"
        if len(set(sizes.values())) > 1:
            return decode.mixed_sizes(video, sizes)
        return ""
    if not video.exists():
        return f"video '{video}' is missing"
    if not video.is_file():
        return f"video '{video}' is not a regular file (a FIFO or a device?): videos must be files"
    if video.suffix.lower() not in decode.VIDEO_SUFFIXES:
        return (f"video '{video}' is neither a folder of frames nor a video file "
                f"({', '.join(sorted(decode.VIDEO_SUFFIXES))})")
    import av
    try:  # decoded but not converted: ~7 ms for a 1080p H.264 clip's first frame
        with av.open(str(video)) as container:
            if not container.streams.video:
                return f"video file '{video}' has no video stream"
            stream = container.streams.video[0]
            if not (full or first_frame):  # the header only: a codec and a frame size
                ok = stream.codec_context.width > 0 and stream.codec_context.height > 0
                return "" if ok else f"video file '{video}' cannot be decoded: its video stream has no frame size"
            n = 0
            for _ in container.decode(stream):
                n += 1
                if not full:
                    break
    except Exception as e:  # PyAV's errors (av.FFmpegError and others), a file that is not a video
        return f"video file '{video}' cannot be decoded: {e}"
    return "" if n else f"video file '{video}' holds no video frames"
