"""Decoding: frame files (PNG, JPEG ...) and video files (PyAV), each frame resized while it is decoded, so
that memory follows the size used, never the file's."""
import os
import re
import stat
from pathlib import Path

import numpy as np
from PIL import Image

VIDEO_SUFFIXES = {".mp4", ".webm", ".avi", ".mov", ".mkv"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
# the most pixels a frame may have (4096 x 4096): more is no video frame of a sign language corpus, and would be
# decoded whole before any resize (a small PNG can declare 20000 x 20000: a decompression bomb)
MAX_FRAME_PIXELS = 4096 * 4096
Image.MAX_IMAGE_PIXELS = MAX_FRAME_PIXELS
TIME_EPSILON = 1e-6  # seconds: a frame shown at a sentence's start time belongs to it, one shown at its end does not
# How a frame file ends when it is whole: a PNG with its IEND chunk, a JPEG with its end-of-image marker
ENDINGS = {".png": b"IEND\xaeB`\x82", ".jpg": b"\xff\xd9", ".jpeg": b"\xff\xd9"}
HEADER_BYTES = 8192  # a JPEG's start of frame follows its APP segments (EXIF, ICC), usually well within this


def regular_file(path, what: str = "frame") -> Path:
    """`path`, refused (OSError naming it) unless it is a regular file (or a link to one): opening a FIFO or a
    device would block or never end."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "not a file"
        raise OSError(f"{what} '{path}' is not a regular file ({kind}): {what}s must be image or video files")
    return Path(path)


def check_pixels(path, size: tuple, error=ValueError):
    """`error` naming the frame if its (width, height) is over MAX_FRAME_PIXELS."""
    if size[0] * size[1] > MAX_FRAME_PIXELS:
        raise error(f"frame '{path}' is {size[0]}x{size[1]} ({size[0] * size[1]:,} pixels), over the "
                         f"{MAX_FRAME_PIXELS:,} a frame may have: not a video frame (a decompression bomb?)")


def frame_size(path, full: bool = False, whole: bool = False) -> tuple:
    """A frame file's (width, height) from its header: a PNG's IHDR or a JPEG's SOF marker, read directly with
    os.read (several times faster than opening it with PIL, which stays the way for other files and for
    headers these parsers do not find); full=True decodes the whole image. whole=True also reads the file's last
    bytes in the same open (ENDINGS): a PNG or JPEG cut off or overwritten at its end is a ValueError naming it; a
    frame damaged inside is found by full=True. An unreadable file, or one that is not a regular file, raises."""
    mode = os.stat(path).st_mode  # a FIFO would block os.open: refused first (regular_file)
    if not stat.S_ISREG(mode):
        regular_file(path)
    suffix = os.path.splitext(os.fspath(path))[1].lower()  # not Path(path): its parsing is most of the cost
    size = tail = None
    if not full and suffix in (".png", ".jpg", ".jpeg"):
        fd = os.open(path, os.O_RDONLY)
        try:
            head = os.read(fd, 24 if suffix == ".png" else HEADER_BYTES)
            tail = os.pread(fd, 16, max(0, os.fstat(fd).st_size - 16)) if whole else None
        finally:
            os.close(fd)
        size = _png_size(head) if suffix == ".png" else _jpeg_size(head)
    if not size:
        with Image.open(path) as im:  # reads the header only, unless loaded: a header PIL cannot read raises first
            if full:
                im.load()
            size = im.size
    if tail is not None:
        _check_end(path, suffix, tail)
    return size


def _check_end(path, suffix: str, tail: bytes):
    """ValueError naming a PNG or JPEG frame whose last bytes are not those of a whole one (ENDINGS)."""
    end = ENDINGS[suffix]
    tail = tail.rstrip(b"\0") if end == b"\xff\xd9" else tail  # some cameras pad a JPEG with zeros
    if not tail.endswith(end):
        raise ValueError(f"frame '{path}' is damaged: it does not end as a whole {suffix[1:].upper()} file "
                         "does (cut off, or its data overwritten): replace it, or remove its video from the split")


def _png_size(head: bytes):
    if len(head) == 24 and head.startswith(PNG_HEADER):
        return tuple(int.from_bytes(head[i:i + 4], "big") for i in (16, 20))
    return None


def _jpeg_size(head: bytes):
    """(width, height) from the first start-of-frame segment (SOF0-SOF15 but DHT, JPG, DAC) within `head`, walked
    segment by segment from the SOI marker; None where it is not found there."""
    if not head.startswith(b"\xff\xd8"):
        return None
    i = 2
    while i + 9 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = int.from_bytes(head[i + 5:i + 7], "big"), int.from_bytes(head[i + 7:i + 9], "big")
            return (width, height) if width and height else None
        if marker == 0xD9 or marker == 0xDA:  # end of image, start of scan: no frame header before it
            return None
        i += 2 + int.from_bytes(head[i + 2:i + 4], "big")
    return None


def natural_key(name: str) -> list:
    """Sort key of a file name: frame2.png before frame10.png."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def frame_files(folder) -> list[Path]:
    """A frame folder's images in natural name order (PHOENIX14T's images0001.png ..., CSL-Daily's 000000.jpg ...)."""
    return [Path(folder) / n for n in frame_names(folder)]


def frame_names(folder) -> list[str]:
    """frame_files' file names, from one listing without a stat or a Path per file; [] for no folder."""
    try:
        names = [e.name for e in os.scandir(folder)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((n for n in names if os.path.splitext(n)[1].lower() in IMAGE_SUFFIXES), key=natural_key)


def decoded_size(width: int, height: int, size=None, short_side: int = None) -> tuple:
    """The (width, height) a frame is decoded at: `size` exactly, or scaled down (aspect kept, never up) so that
    its shorter side is at most `short_side`, or as stored."""
    if size is not None:
        return tuple(size)
    if short_side and min(width, height) > short_side:
        scale = short_side / min(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))
    return width, height


def iter_video(path, size=None, short_side: int = None, stop: int = None, start: float = None, end: float = None,
               keep: set = None, times: list = None):
    """A video file's frames (PyAV), each resized while decoding (decoded_size; swscale's area filter) to uint8
    [H, W, 3], so that memory follows the output size, not the file's; `stop`: at most that many frames; `start`,
    `end`: only the frames shown from `start` up to before `end` (seconds; a sentence of a full-length video), found
    by seeking to the key frame before `start`; `keep`: only the frames of these indices (counted from `start`) are
    converted and yielded; `times`: a list that gets every such frame's time in seconds (its presentation time:
    right for a variable frame rate). A file that cannot be decoded is an OSError naming it."""
    import av  # only video files need PyAV
    path = regular_file(path, "video file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise OSError("no video stream")
            stream = container.streams.video[0]
            if stop is None:  # decoder threads pay off over a whole clip, not for a first frame
                stream.thread_type = "AUTO"
            if start:
                container.seek(int(start / stream.time_base), stream=stream)
            step = 1 / float(stream.average_rate or 25)  # for a frame without a time (no pts): the previous + 1/rate
            n = 0
            for frame in container.decode(stream):
                t = frame.time
                if start is not None and t is not None and t < start - TIME_EPSILON:
                    continue
                if (end is not None and t is not None and t >= end - TIME_EPSILON) or (stop is not None and n >= stop):
                    return
                n += 1
                if times is not None:
                    times.append(float(t) if t is not None else (times[-1] + step if times else 0.0))
                if keep is not None and n - 1 not in keep:
                    continue
                width, height = decoded_size(frame.width, frame.height, size, short_side)
                yield frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    except Exception as e:  # PyAV's errors (av.FFmpegError and others), a file that is not a video
        raise OSError(f"video file '{path}' cannot be decoded: {e}") from e


def count_frames(path, start: float = None, end: float = None) -> int:
    """How many frames a video file (or its stretch from `start` to `end` seconds) decodes to, decoded but never
    converted (no frame is kept)."""
    times = []
    for _ in iter_video(path, start=start, end=end, keep=set(), times=times):
        pass
    return len(times)


def video_duration(path) -> float:
    """A video file's duration in seconds from its container's header (its video stream's where the container
    does not say); None where neither does."""
    return video_timing(path)[0]


def video_timing(path) -> tuple:
    """From a video file's header: (duration in seconds or None, frames per second or None, its video stream's
    first time in seconds)."""
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = container.duration / av.time_base if container.duration else \
            float(stream.duration * stream.time_base) if stream.duration else None
        first = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        return duration, float(stream.average_rate) if stream.average_rate else None, first


def video_file_size(path) -> list:
    """A video file's stored frame size [height, width], from its stream's header (the authors' augmentation
    shifts and rotates in the frame's own pixels)."""
    import av
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [stream.codec_context.height, stream.codec_context.width]


def read_video(path, size=None, short_side: int = None) -> np.ndarray:
    """All frames of a video file or of a frame folder as uint8 [N, H, W, 3], each resized on reading
    (decoded_size), so that a long clip of large frames never sits in memory at its stored size."""
    return read_selected(path, np.arange, size, short_side)[0]


def read_selected(path, select, size=None, short_side: int = None, start: float = None, end: float = None) -> tuple:
    """The frames select(n) of a video file (or of its stretch from `start` to `end` seconds) or frame folder of n
    frames, as uint8 [len(keep), H, W, 3], each resized on reading (decoded_size): only the frames kept are ever
    held. -> (pixels, keep, every frame's time in seconds; None for a folder)"""
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        if not files:
            raise FileNotFoundError(f"video folder '{path}' has no images "
                                    f"(frames: {', '.join(sorted(IMAGE_SUFFIXES))})")
        keep = select(len(files))
        return read_frames([files[i] for i in keep], size, short_side), keep, None
    keep, times = select(count_frames(path, start, end)), []
    frames = list(iter_video(path, size, short_side, None, start, end, set(keep.tolist()), times))
    if not frames:
        raise ValueError(f"video file '{path}': no video frames could be decoded")
    return np.stack(frames), keep, times


def read_frames(paths: list, size=None, short_side: int = None, min_side: int = None) -> np.ndarray:
    """Frame files of one video as uint8 [N, H, W, 3] (read_frame); frames of different sizes are an error naming
    their folder and the odd frames (mixed_sizes)."""
    frames = [read_frame(p, size, short_side, min_side) for p in paths]
    if len({f.shape for f in frames}) > 1:
        raise ValueError(mixed_sizes(paths[0].parent, {p: f.shape[1::-1] for p, f in zip(paths, frames)}))
    return np.stack(frames)


def mixed_sizes(folder, sizes: dict) -> str:
    """The error of a frame folder whose frames {path: (width, height)} differ in size: the commonest size is
    the video's, and the frames of the others are named (the first three)."""
    count = {}
    for wh in sizes.values():
        count[tuple(wh)] = count.get(tuple(wh), 0) + 1
    common = max(count, key=count.get)
    odd = [str(p) for p, wh in sizes.items() if tuple(wh) != common]
    shown = ", ".join(f"{n} of {w}x{h}" for (w, h), n in sorted(count.items(), key=lambda kv: -kv[1]))
    return (f"video folder '{folder}' mixes frame sizes (width x height): {shown}: '" + "', '".join(odd[:3]) + "'"
            + (f" and {len(odd) - 3} more" if len(odd) > 3 else ""))


def read_frame(path, size=None, short_side: int = None, min_side: int = None) -> np.ndarray:
    """One RGB frame as uint8 [H, W, 3], optionally resized (decoded_size; PIL's bilinear, antialiased); with
    `min_side`, a frame at least twice that on both sides is first reduced by a whole factor (a JPEG decoded
    at that scale), so that a large frame is never held at its stored size. An unreadable file, one that is not
    a regular file, or one over MAX_FRAME_PIXELS is an error naming it."""
    try:
        with Image.open(regular_file(path)) as im:
            check_pixels(path, im.size, OSError)
            k = min(im.size) // min_side if min_side else 1
            if k >= 2:
                im.draft("RGB", (im.size[0] // k, im.size[1] // k))  # JPEG: DCT scaling; other formats: nothing
                k = min(im.size) // min_side
                im = im.reduce(k) if k >= 2 else im
            im = im if im.mode == "RGB" else im.convert("RGB")
            target = decoded_size(*im.size, size, short_side)
            return np.asarray(im if target == im.size else im.resize(target, Image.BILINEAR))
    except Image.DecompressionBombError:  # refused by PIL on opening (over twice MAX_FRAME_PIXELS)
        check_pixels(path, frame_size(path), OSError)
        raise
    except (OSError, ValueError, SyntaxError) as e:
        raise OSError(f"cannot read frame '{path}': {e}") from e
