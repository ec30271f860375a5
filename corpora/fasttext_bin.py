"""A fastText model file (cc.de.300.bin ...) checked against its own size before fastText reads it: fastText
allocates whatever a file's header declares and reads past its end unchecked, so a damaged header grows memory
without end and a file cut off loads as garbage vectors. Layout (fastText's FastText::saveModel, format 11/12):
magic, version; 12 int32 args and a double; the dictionary (int32 size, nwords, nlabels; int64 ntokens,
pruneidx_size; per entry its word, 0-terminated, int64 count and int8 type; pruneidx_size int32 pairs); then the
input and output matrices, each a quantised flag byte and, unquantised, int64 m, n and m * n float32."""
import mmap
import os
import stat
import struct

MAGIC, VERSIONS = 793712314, (11, 12)


def check(path: str) -> str:
    """`path` if it is a whole, unquantised fastText model; else ValueError saying what is wrong (argparse shows
    it as an error of --fasttext)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ValueError(f"'{path}': {e.strerror} (expected a fastText .bin such as cc.de.300.bin)") from None
    if not stat.S_ISREG(mode):
        raise ValueError(f"'{path}' is not a regular file (expected a fastText .bin such as cc.de.300.bin)")
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8 + 56 + 24:
            raise ValueError(f"'{path}': not a fastText model ({size} bytes)")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            end = _walk(m, size, f"'{path}'")
    if end != size:
        raise ValueError(f"'{path}': not a fastText model: its parts end at byte {end:,}, the file at {size:,}")
    return path


def _walk(m, size: int, where: str) -> int:
    """The offset where the model's last part ends, every count checked against the bytes left."""
    magic, version = struct.unpack_from("<ii", m, 0)
    if magic != MAGIC or version not in VERSIONS:
        raise ValueError(f"{where}: not a fastText model (magic {magic}, version {version})")
    dim = struct.unpack_from("<i", m, 8)[0]
    n, nwords, nlabels, _, pruned = struct.unpack_from("<iiiqq", m, 64)
    pos = 64 + 24
    if min(n, nwords, nlabels, pruned + 1) < 0 or nwords + nlabels != n or n * 10 > size - pos:
        raise ValueError(f"{where}: not a complete fastText model: its dictionary declares {n:,} entries "
                         f"({nwords:,} words, {nlabels:,} labels), the file holds {size:,} bytes")
    for i in range(n):
        zero = m.find(b"\0", pos)
        if zero < 0 or zero + 10 > size:
            raise ValueError(f"{where}: cut off in its dictionary (entry {i:,} of {n:,})")
        pos = zero + 10
    pos += 8 * max(pruned, 0)  # -1: not pruned
    for name in ("input", "output"):
        if pos + 17 > size:
            raise ValueError(f"{where}: cut off before its {name} matrix (byte {pos:,} of {size:,})")
        if m[pos]:
            raise ValueError(f"{where}: a quantised model (.ftz), which is not read: pass the .bin")
        rows, cols = struct.unpack_from("<qq", m, pos + 1)
        pos += 17
        if rows < 0 or cols != dim or rows * cols * 4 > size - pos:
            raise ValueError(f"{where}: cut off: its {name} matrix needs {max(rows * cols * 4, 0):,} bytes of "
                             f"{rows:,} x {cols:,} floats from byte {pos:,}, the file ends at {size:,}")
        pos += rows * cols * 4
    return pos
