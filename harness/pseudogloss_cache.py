"""The pseudo-gloss cache (DESIGN.md "Pseudo-glosses"): pseudogloss.build_pseudoglosses' result kept in the run's
folder (<out>/cache) and in a folder shared by later runs, under a key made of everything it was built from (the
annotations' sha256, the splits, the options, the tagger, the language, the content of --fasttext's file). Every
entry is checked in full before use (types, shapes, label indices, every video named); a damaged one is said,
naming the file and the entry, and rebuilt: never trained on."""
import dataclasses
import hashlib
import json
import os
import pickle
from pathlib import Path

import torch

import data
import pseudogloss
from corpora import files

SAMPLES, SAMPLE_BYTES = 16, 1 << 16  # --fasttext's fingerprint: 16 blocks of 64 KiB, evenly spread over the file


def shared_dir() -> Path:
    """Where pre-training keeps pseudo-glosses for every later run on the same annotations and options (the
    tagging and the skip-gram training cost over a minute and a half at PHOENIX14T's size on 2 CPU cores):
    $XDG_CACHE_HOME/hfa-slt/pseudoglosses, else ~/.cache/hfa-slt/pseudoglosses; never the data root."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hfa-slt" / "pseudoglosses"


def file_fingerprint(path) -> dict:
    """What a --fasttext file holds, without reading all of cc.de.300.bin's 7 GB: its size, mtime_ns and the
    sha256 of SAMPLES blocks spread over it (the first and the last included). A file replaced by another
    model changes it."""
    st, digest = os.stat(path), hashlib.sha256()
    with open(path, "rb") as f:
        for k in range(SAMPLES):
            f.seek(max(0, st.st_size - SAMPLE_BYTES) * k // (SAMPLES - 1))
            digest.update(f.read(SAMPLE_BYTES))
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sampled_sha256": digest.hexdigest()}


def cache_key(rows: dict, splits, fasttext_path, dim: int, seed: int, lang: str) -> dict:
    """What the pseudo-glosses of `rows` (split -> (name, translation)) are made from: the cache's key."""
    digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()
    fasttext = {"path": str(Path(fasttext_path).resolve()), **file_fingerprint(fasttext_path)} \
        if fasttext_path else None
    return {"splits": list(splits), "fasttext": fasttext, "dim": dim, "seed": seed,
            "tagger": pseudogloss.tagger_name(lang), "annotations": digest, "lang": lang,
            "version": pseudogloss.VERSION}


def pseudoglosses(root, splits=None, fasttext_path=None, cache_dir=None, dim=300, seed=0, lang="de",
                  shared=None) -> pseudogloss.PseudoGlosses:
    """pseudogloss.build_pseudoglosses, cached: in `cache_dir` when given (pretrain.py: <out>/cache; never the
    data root, which may be read-only) as pseudoglosses-<splits>.pt, and in `shared` (pretrain.py: shared_dir())
    under a name made of the whole key, read before building and written after. A stale entry (another key) is
    rebuilt; a damaged one is said and rebuilt."""
    if lang not in data.LANGS:
        raise ValueError(f"language '{lang}': expected one of {', '.join(data.LANGS)}")
    splits, rows = pseudogloss.read_rows(root, splits)
    key = cache_key(rows, splits, fasttext_path, dim, seed, lang)
    names = [name for split_rows in rows.values() for name, _ in split_rows]
    cache = Path(cache_dir) / f"pseudoglosses-{'-'.join(splits)}.pt" if cache_dir else None
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
    shared = Path(shared) / f"pseudoglosses-{name}.pt" if shared else None
    pg = read(cache, key, names) if cache else None
    if pg is not None:
        return pg
    pg = read(shared, key, names) if shared else None
    if pg is None:
        pg = dataclasses.replace(pseudogloss.build_pseudoglosses(root, splits, fasttext_path, dim, lang, rows),
                                 key=key)
        if shared:
            write(shared, pg, required=False)
    if cache:
        files.make_folder(cache.parent)  # <out>/cache: never a link that would put the cache elsewhere
        write(cache, pg, required=True)
    return pg


def read(cache: Path, key: dict, names: list):
    """The pseudo-glosses cached in `cache` for `key` and the videos `names`; None when there is none, it is for
    another key, or it is damaged (cut off, not a torch file, foreign objects, an entry of the wrong type or out
    of range, a video without labels), which is said, naming the file and the entry."""
    if not cache.is_file():
        return None
    why, pg = files.torch_archive_problem(cache), None  # checked before unpickling: nothing inflates in memory
    if not why:
        try:
            pg = torch.load(cache, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError:  # weights_only refused an object: not a cache this project writes
            why = "it holds Python objects other than tensors and plain values"
        except Exception as e:  # EOFError, RuntimeError (not a zip), ...: whatever a cut-off file makes torch raise
            why = f"{type(e).__name__}: cut off or not a torch file"
    if not why and isinstance(pg, dict) and pg.get("key") != key:
        return None  # built from other annotations or options: rebuilt, as nothing is wrong with it
    why = why or entry_problem(pg, key["dim"], names)
    if why:
        print(f"pseudo-gloss cache '{cache}' is damaged ({why}); rebuilding it", flush=True)
        return None
    return pseudogloss.PseudoGlosses(pg["vocab"], pg["prototypes"], pg["labels"], pg["key"])


def entry_problem(pg, dim: int, names: list) -> str:
    """What is wrong with a cache entry read back ('' if nothing): the vocabulary U distinct strings, the
    prototypes P a finite float tensor [U + 1, dim], the labels of every video of `names` a list of indices
    into the vocabulary."""
    vocab = pg.get("vocab") if isinstance(pg, dict) else None
    if not isinstance(vocab, list) or not isinstance(pg.get("labels"), dict):
        return "entry vocab or labels missing, or not a list and a dict"
    odd = next((i for i, g in enumerate(vocab) if not isinstance(g, str) or not g), None)
    if odd is not None:
        return f"entry vocab[{odd}] is {vocab[odd]!r}, not a pseudo-gloss (a non-empty string)"
    if len(set(vocab)) != len(vocab):
        return "entry vocab names a pseudo-gloss twice"
    p = pg.get("prototypes")
    if not isinstance(p, torch.Tensor) or tuple(p.shape) != (len(vocab) + 1, dim) or not p.is_floating_point() \
            or not torch.isfinite(p).all():
        shape = tuple(p.shape) if isinstance(p, torch.Tensor) else type(p).__name__
        return f"entry prototypes is {shape}, not finite floats of shape [{len(vocab)} + 1, {dim}]"
    labels = pg["labels"]
    missing = next((n for n in names if n not in labels), None)
    if missing is not None:
        return f"entry labels has no labels for video '{missing}'"
    for n, found in labels.items():
        if not isinstance(found, list):
            return f"entry labels['{n}'] is {type(found).__name__}, not a list of indices"
        bad = [i for i in found if type(i) is not int or not 0 <= i < len(vocab)]
        if bad:
            return f"entry labels['{n}'] holds {bad[0]!r}, not an index into the {len(vocab)} pseudo-glosses"
    return ""


def write(path: Path, pg: pseudogloss.PseudoGlosses, required: bool):
    """pg as plain values (read back with weights_only), atomically; a shared cache that cannot be written (a
    read-only home) is said and skipped."""
    try:
        files.atomic_write(path, lambda tmp: torch.save(dataclasses.asdict(pg), tmp))
    except OSError as e:
        if required:
            raise
        print(f"pseudo-glosses not kept in the shared cache '{path}': {e}", flush=True)
