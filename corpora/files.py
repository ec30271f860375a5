"""Files: the one temp-and-rename of the project (atomic_write), and the checked reading of annotation files
(UTF-8, a header, every row whole, names that stay inside their folder and appear once)."""
import csv
import glob
import io
import os
import re
import shutil
from pathlib import Path


def atomic_write(path: Path, write):
    """write(tmp) makes a file or a folder at a temporary name of its own (pid + random) beside `path`, which is
    then renamed to `path` (replacing what was there): never half a file or folder, and two writers never share
    a temporary. The one temp-and-rename of the project: checkpoints, caches, translations, packs, corpora.
    Temporaries that an earlier writer of `path` left when it was killed are removed first, except the old copy
    it had set aside when `path` is gone (killed between the two renames): that copy is put back (restore_old).
    A symbolic link at `path` is refused (a folder of --out that files are written into is made by make_folder,
    which refuses one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    refuse_link(path)
    restore_old(path)
    remove_stale_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}-{os.urandom(4).hex()}")
    old = path.with_name(f".{path.name}.old{os.getpid()}-{os.urandom(4).hex()}")
    try:
        write(tmp)
        if tmp.is_dir() and path.is_dir():  # a folder cannot be renamed over another: set the old one aside first
            os.replace(path, old)
        os.replace(tmp, path)
    finally:
        for leftover in (tmp, old):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)


def refuse_link(path: Path):
    """SystemExit naming `path` if it is a symbolic link (lstat: the link itself, not what it points to)."""
    if os.path.islink(path):
        raise SystemExit(f"'{path}' is a symbolic link (to '{os.readlink(path)}'): this project never writes "
                         "through links; remove it (nothing was written)")


def make_folder(folder: Path) -> Path:
    """A folder of --out (its cache/), made where missing; not a symbolic link (refuse_link), which would let
    what is written there land elsewhere, nor something other than a folder."""
    folder = Path(folder)
    refuse_link(folder)
    if folder.exists() and not folder.is_dir():
        raise SystemExit(f"'{folder}' exists and is not a folder: pass another --out (nothing was written)")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_stale_temporaries(path: Path) -> list:
    """Removes the temporaries .<name>.tmp<pid>-<hex> and .<name>.old<pid>-<hex> that atomic_write makes beside
    `path`, where their process has ended (killed before it could clean up); a writer still running elsewhere
    keeps its own. -> the names removed"""
    path, removed = Path(path), []
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*"):
        match = re.fullmatch(rf"\.{re.escape(path.name)}\.(?:tmp|old)(\d+)-[0-9a-f]+", tmp.name)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
            removed.append(tmp.name)
    return removed


def restore_old(path: Path) -> bool:
    """A folder that atomic_write was replacing when its process was killed between setting the old copy aside
    (.<name>.old<pid>-<hex>) and renaming the new one in: with `path` gone, the newest such copy of an ended
    process is renamed back to `path`, never deleted. -> whether one was."""
    path = Path(path)
    if os.path.lexists(path):
        return False
    old = [p for p in path.parent.glob(f".{glob.escape(path.name)}.old*")
           if (m := re.fullmatch(rf"\.{re.escape(path.name)}\.old(\d+)-[0-9a-f]+", p.name))
           and not _process_alive(int(m.group(1)))]
    if not old:
        return False
    os.replace(max(old, key=lambda p: p.stat().st_mtime_ns), path)
    print(f"'{path}': put back the copy that an interrupted replacement had set aside", flush=True)
    return True


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # exists (another user's), or an id no process can have: leave it alone
    return True


def read_text(path) -> str:
    """A UTF-8 text file (a leading byte-order mark dropped); bytes that are not UTF-8 are an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file '{path}' not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"'{path}', line {line}: not UTF-8 (byte 0x{raw[e.start]:02x}); "
                         "save the file as UTF-8") from None
    return text.removeprefix("\ufeff")


def read_table(path, delimiter: str, fields: tuple, quoting=csv.QUOTE_NONE) -> list[tuple]:
    """The rows of a CSV file with a header naming at least `fields`: (line number, row dict); a row with another
    number of fields than the header or an empty field of `fields` is an error naming the file and line."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""), delimiter=delimiter, quoting=quoting)
    if reader.fieldnames is None or not set(fields) <= set(reader.fieldnames):
        raise ValueError(f"'{path}' lacks the header naming {', '.join(fields)} (separated by {delimiter!r}); "
                         f"its first line is {reader.fieldnames}")
    rows, first = [], reader.line_num + 1
    for r in _rows(reader, path):
        where, start, first = f"'{path}', line {reader.line_num}", first, reader.line_num + 1
        if any("\n" in v or "\r" in v for v in r.values() if isinstance(v, str)):
            raise ValueError(f"'{path}', lines {start}-{reader.line_num} hold one row: a field runs over "
                             "several lines (a quote \" opening a field and never closed?)")
        if None in r or None in r.values():
            n = sum(v is not None for k, v in r.items() if k is not None) + len(r.get(None, []))
            raise ValueError(f"{where}: {n} fields where the header has {len(reader.fieldnames)} "
                             f"(fields are separated by {delimiter!r})")
        for k, v in r.items():
            check_text(v, f"{where}, field {k}")
        empty = [f for f in fields if not r[f].strip()]
        if empty:
            raise ValueError(f"{where}: empty {empty[0]}")
        rows.append((reader.line_num, r))
    return rows


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1 controls but tab and line feed


def check_text(text: str, where: str):
    """A field of an annotation file holds no control character (a NUL byte, an escape ...): one would reach the
    tokenizer, the pseudo-glosses and the references unseen. ValueError naming `where` and the character."""
    bad = CONTROL.search(text) if isinstance(text, str) else None
    if bad:
        raise ValueError(f"{where}: control character U+{ord(bad.group()):04X} at position {bad.start() + 1} of "
                         f"{text[:40]!r}: annotation text holds none (a damaged or binary file?)")


def _rows(reader, path):
    """The reader's rows; csv's own errors (a field over its size limit ...) name the file and line."""
    try:
        yield from reader
    except csv.Error as e:
        raise ValueError(f"'{path}', line {reader.line_num + 1}: {e} characters (a translation that long, a quote "
                         "\" never closed, or not an annotation file?)") from None


def inside(base: Path, name: str, where: str) -> Path:
    """base / name, refused unless it stays inside base: a name from an annotation file is a name, never an
    absolute path or one that climbs out with '..' (checked on the text, so symlinked dataset folders still work)."""
    if not name or os.path.isabs(name) or name.startswith("~"):
        raise ValueError(f"{where}: '{name}' is not a name inside '{base}' (absolute or empty paths are refused)")
    rel = os.path.normpath(name)
    if rel == ".." or rel.startswith(".." + os.sep) or rel == ".":
        raise ValueError(f"{where}: '{name}' leads outside '{base}' (names may not climb out with '..')")
    return base / rel


def unique_rows(rows: list, path) -> list[dict]:
    """rows [(line, {name, ...})] -> the row dicts, refusing a name that two lines share (the second would
    silently take the first's place wherever videos are looked up by name)."""
    first = {}
    for line, row in rows:
        if row["name"] in first:
            raise ValueError(f"'{path}': video name '{row['name']}' appears twice, on lines {first[row['name']]} "
                             f"and {line}; names must be unique")
        first[row["name"]] = line
    return [row for _, row in rows]


def torch_archive_problem(path) -> str:
    """What is wrong with a file that should be a torch.save archive, read without unpickling anything: missing,
    empty, not a zip archive, or an archive whose entries are compressed or add up to more than the file (which
    torch.save never writes: it stores its entries as they are, so a small file cannot inflate to a large one in
    memory). None when nothing is."""
    import zipfile
    path = Path(path)
    if path.is_symlink() or not path.is_file():
        return "not found, or not a plain file"
    size = path.stat().st_size
    if size == 0:
        return "it is empty (0 bytes): cut off or never written"
    if not zipfile.is_zipfile(path):
        return "not a torch file (cut off, or another kind of file)"
    try:
        with zipfile.ZipFile(path) as z:
            entries = z.infolist()
    except (zipfile.BadZipFile, OSError) as e:
        return f"a damaged archive ({e})"
    packed = [e.filename for e in entries if e.compress_type != zipfile.ZIP_STORED]
    if packed or sum(e.file_size for e in entries) > size:
        return (f"its entry '{packed[0]}' is compressed" if packed else "its entries add up to more than the file") + \
            ", which torch.save never writes (it would inflate in memory): not loaded"
    return None


_ONCE = {}  # (what, the sources' stat) -> read()'s rows


def read_once(what: tuple, sources: list, read) -> list[dict]:
    """read()'s rows, read once per process for `what` until one of `sources` (files, folders) changes its inode,
    size or modification time; each row a copy, which the caller may change."""
    key = (what, tuple(_stat(p) for p in sources))
    if key not in _ONCE:
        _ONCE[key] = read()
    return [dict(row) for row in _ONCE[key]]


def _stat(path: Path) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return (str(path),)
    return (str(path), st.st_ino, st.st_size, st.st_mtime_ns)
