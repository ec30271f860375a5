"""CSL-Daily as released (Chinese): <root>/sentence_label/csl2020ct_v2.pkl (a dict whose `info` lists {name,
length, label_char, label_word, ...}), <root>/sentence_label/split_1.txt (name|split lines, header optional) and
<root>/sentence/frames_512x512/<name>/*.jpg (or sentence_frames-512x512/frames_512x512/)."""
import pickle
from pathlib import Path

from corpora import files

LANG = "zh"
FRAME_DIRS = ("sentence/frames_512x512", "sentence_frames-512x512/frames_512x512", "sentence_frames-512x512")
LABELS = Path("sentence_label") / "csl2020ct_v2.pkl"
SPLIT_FILE = Path("sentence_label") / "split_1.txt"


def detect(root: Path) -> bool:
    return (root / "sentence_label").is_dir()


def sources(root: Path, split: str) -> list:
    """What a split's rows are read from besides its split file: the labels (data.read_split reads again when
    one changes)."""
    return [root / LABELS]


def split_file(root: Path, split: str) -> Path:
    """CSL-Daily's splits are one file: its split file."""
    return root / SPLIT_FILE


def frames_folder(root) -> Path:
    """CSL-Daily's frame folder under the spellings in use (the first that exists; else the release's)."""
    for rel in FRAME_DIRS:
        if (Path(root) / rel).is_dir():
            return Path(root) / rel
    return Path(root) / FRAME_DIRS[0]


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles plain data only (dicts, lists, strings, numbers and numpy arrays): the label file is data, and a
    pickle that names any other class or function is refused instead of run."""
    ALLOWED = {("collections", "OrderedDict"), ("numpy", "ndarray"), ("numpy", "dtype"),
               ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
               ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it names {module}.{name}, not plain data")
        return super().find_class(module, name)


def read_labels(path) -> dict:
    """CSL-Daily's label pickle -> name -> translation (label_char joined: the field's translation target;
    label_word where an entry has no label_char); an entry's other fields are not read."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            labels = _PlainUnpickler(f).load()
    except FileNotFoundError:
        raise FileNotFoundError(f"CSL-Daily label file '{path}' not found") from None
    except Exception as e:  # a damaged or foreign pickle can fail in many ways
        raise ValueError(f"CSL-Daily label file '{path}' cannot be read: {e}") from None
    if not isinstance(labels, dict) or not isinstance(labels.get("info"), (list, tuple)):
        found = sorted(map(str, labels)) if isinstance(labels, dict) else type(labels).__name__
        raise ValueError(f"CSL-Daily label file '{path}' has no `info` list of videos (found {found})")
    out = {}
    for i, entry in enumerate(labels["info"]):
        where = f"CSL-Daily label file '{path}', info[{i}]"
        text = entry.get("label_char", entry.get("label_word")) if isinstance(entry, dict) else None
        if text is None or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise ValueError(f"{where}: not a dict with name and label_char (or label_word)")
        if not (isinstance(text, str) or isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text)):
            raise ValueError(f"{where} ('{entry['name']}'): its translation (label_char or label_word) is "
                             f"{type(text).__name__} {str(text)[:40]!r}, not a string or a list of strings")
        text = text if isinstance(text, str) else "".join(text)
        files.check_text(text, f"{where} ('{entry['name']}')")
        if not text.strip():
            raise ValueError(f"{where} ('{entry['name']}'): empty translation")
        if entry["name"] in out:
            raise ValueError(f"{where}: video name '{entry['name']}' appears twice; names must be unique")
        out[entry["name"]] = text
    return out


def read(root: Path, split: str) -> list[dict]:
    """CSL-Daily: the split file's names of `split` (header line optional) with their label_char from the pickle."""
    path, frames = root / SPLIT_FILE, frames_folder(root)
    labels = read_labels(root / LABELS)
    rows = []
    for line, text in enumerate(files.read_text(path).splitlines(), 1):
        parts = [p.strip() for p in text.split("|")] if "|" in text else text.split()  # some copies: white space
        if not parts or (line == 1 and parts == ["name", "split"]):
            continue
        where = f"'{path}', line {line}"
        if len(parts) != 2 or not parts[0]:
            raise ValueError(f"{where}: '{text}' is not name|split")
        if parts[1] != split:
            continue
        if parts[0] not in labels:
            raise ValueError(f"{where}: video '{parts[0]}' is not in the label file '{root / LABELS}'")
        rows.append((line, {"name": parts[0], "translation": labels[parts[0]],
                            "video": files.inside(frames, parts[0], where)}))
    return files.unique_rows(rows, path)

