"""
Pseudo-glosses (paper §3.2 "Pseudo-Gloss Pretraining"; DESIGN.md "Pseudo-glosses"): POS-tag and
lemmatise every German translation, keep the lemmas whose universal POS is NOUN, NUM, ADV, PRON,
PROPN, ADJ or VERB, lower-cased. Each pseudo-gloss gets a 300-d fastText prototype, plus a zero
"non-sign" row; the multi-hot labels H of eq. 3 say which pseudo-glosses a video's sentence holds.

    python pseudogloss.py --data synthetic
    python pseudogloss.py --data phoenix14t --vocab-splits train dev test
"""

import argparse
import functools
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

import data

KEEP_POS = {"NOUN", "NUM", "ADV", "PRON", "PROPN", "ADJ", "VERB"}
SPACY_MODELS = ("de_core_news_lg", "de_core_news_md", "de_core_news_sm")

# STTS -> universal POS, as spaCy's German tag map does it, except that modal verbs are AUX.
# HanTa's taglevel=1 writes 'VV(FIN)', 'ADJ(A)'; its extra tags NNA/NNI are nominalised words.
STTS_TO_UPOS = {
    **dict.fromkeys(["NN", "NNA", "NNI"], "NOUN"),
    "NE": "PROPN",
    "CARD": "NUM",
    **dict.fromkeys(["ADJA", "ADJD"], "ADJ"),
    **dict.fromkeys(["ADV", "PAV", "PROAV", "PWAV"], "ADV"),
    **dict.fromkeys(["PPER", "PRF", "PPOSS", "PDS", "PIS", "PRELS", "PWS"], "PRON"),
    **dict.fromkeys(["VVFIN", "VVINF", "VVIZU", "VVPP", "VVIMP"], "VERB"),
    **dict.fromkeys(["VAFIN", "VAINF", "VAPP", "VAIMP", "VMFIN", "VMINF", "VMPP"], "AUX"),
    **dict.fromkeys(["ART", "PDAT", "PIAT", "PIDAT", "PPOSAT", "PRELAT", "PWAT"], "DET"),
    **dict.fromkeys(["APPR", "APPRART", "APPO", "APZR", "PTKVZ"], "ADP"),
    "KON": "CCONJ",
    "KOKOM": "CCONJ",
    **dict.fromkeys(["KOUS", "KOUI"], "SCONJ"),
    **dict.fromkeys(["PTKNEG", "PTKZU", "PTKA", "PTKANT"], "PART"),
    "ITJ": "INTJ",
    **dict.fromkeys(["FM", "XY", "TRUNC"], "X"),
    **dict.fromkeys(["$.", "$,", "$("], "PUNCT"),
}

# -----------------------------------------------------------------------------
# pseudo-gloss extraction


@functools.lru_cache(maxsize=None)
def _pos_tagger():
    """The German POS tagger and lemmatiser of DESIGN.md "Pseudo-glosses": spaCy if installed, else HanTa; loaded once."""
    try:
        import spacy
    except ImportError:
        spacy = None
    if spacy is not None:
        for name in SPACY_MODELS:
            try:
                return "spacy:" + name, spacy.load(name, disable=["parser", "ner"])
            except OSError:
                continue
    try:
        from HanTa import HanoverTagger
    except ImportError as e:
        raise ImportError("pseudogloss.py needs a German POS tagger: pip install HanTa "
                          f"(or spaCy with one of {', '.join(SPACY_MODELS)})") from e
    return "hanta", HanoverTagger.HanoverTagger("morphmodel_ger.pgz")


@functools.lru_cache(maxsize=None)
def _extract(sentence):
    """Cached body of extract(): the sentence's (lemma, universal POS) filtered to the kept classes."""
    kind, tagger = _pos_tagger()
    if kind.startswith("spacy"):
        return tuple(t.lemma_.lower() for t in tagger(sentence) if t.pos_ in KEEP_POS)
    tokens = re.findall(r"\w+(?:-\w+)*|[^\w\s]", sentence)
    if not tokens:
        return ()
    tagged = tagger.tag_sent(tokens, taglevel=1)  # [(word, lemma, 'VV(FIN)')]
    return tuple(lemma.lower() for _, lemma, tag in tagged
                 if STTS_TO_UPOS.get(tag.replace("(", "").replace(")", ""), "X") in KEEP_POS)


def extract(sentence: str) -> list[str]:
    """Paper §3.2: the pseudo-glosses of one translation, lower-case lemmas of NOUN/NUM/ADV/PRON/PROPN/ADJ/VERB tokens, in order."""
    return list(_extract(sentence))


def read_translations(root, split):
    """(name, translation) pairs of a split, read as data.read_split reads the annotation CSV."""
    return [(r["name"], r["translation"]) for r in data.read_split(root, split)]


# -----------------------------------------------------------------------------
# vocabulary, prototypes and labels


def _skipgram_vectors(sentences, words, dim, seed, workdir):
    """DESIGN.md "Pseudo-glosses": 300-d skip-gram fastText trained on the training translations when no cc.de.300.bin is given."""
    import fasttext
    # fastText's Python trainer seeds its RNG with 0 and takes no seed argument; thread=1 makes it
    # deterministic, so `seed` only enters the cache key. t=1 turns off frequent-word subsampling,
    # which on a corpus of a few thousand sentences drops most tokens and leaves near-parallel vectors.
    del seed
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=workdir, delete=False, encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
    try:
        model = fasttext.train_unsupervised(f.name, model="skipgram", dim=dim, epoch=20, minCount=1, t=1.0,
                                            thread=1, verbose=0)
    finally:
        os.unlink(f.name)
    return torch.from_numpy(np.array([model.get_word_vector(w) for w in words], np.float32).reshape(len(words), dim))


def _pretrained_vectors(path, words, dim):
    """DESIGN.md "Pseudo-glosses": the user's fastText binary (cc.de.300.bin) looked up for every pseudo-gloss."""
    import fasttext
    if not Path(path).is_file():
        raise FileNotFoundError(f"--fasttext {path}: file not found (expected a fastText .bin such as cc.de.300.bin)")
    model = fasttext.load_model(str(path))
    if model.get_dimension() != dim:
        raise ValueError(f"--fasttext {path} has {model.get_dimension()}-d vectors, the prototypes need {dim}")
    return torch.from_numpy(np.array([model.get_word_vector(w) for w in words], np.float32).reshape(len(words), dim))


def build_pseudoglosses(root, splits=("train",), fasttext_path=None, cache_dir=None, dim=300, seed=0) -> dict:
    """Paper §3.2 / DESIGN.md "Pseudo-glosses": vocabulary of `splits`, prototypes P [U+1, dim] (last row non-sign), labels of every video; cached."""
    root, splits = Path(root), tuple(splits)
    present = [s for s in data.SPLITS if data.annotation_path(root, s).is_file()]
    rows = {s: read_translations(root, s) for s in dict.fromkeys(list(splits) + present)}
    digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()
    key = {"splits": list(splits), "fasttext": str(Path(fasttext_path).resolve()) if fasttext_path else None,
           "dim": dim, "seed": seed, "tagger": _pos_tagger()[0], "annotations": digest}
    cache_dir = Path(cache_dir) if cache_dir else root
    cache = cache_dir / f"pseudoglosses-{'-'.join(splits)}.pt"
    if cache.is_file():
        pg = torch.load(cache, weights_only=True)
        if pg.get("key") == key:
            return pg

    vocab = sorted({g for s in splits for _, sentence in rows[s] for g in extract(sentence)})
    index = {g: i for i, g in enumerate(vocab)}
    labels = {name: [index[g] for g in extract(sentence) if g in index] for s in rows for name, sentence in rows[s]}
    cache_dir.mkdir(parents=True, exist_ok=True)
    if fasttext_path:
        vectors = _pretrained_vectors(fasttext_path, vocab, dim)
    else:
        vectors = _skipgram_vectors([t for _, t in rows["train" if "train" in rows else splits[0]]], vocab, dim, seed, cache_dir)
    prototypes = torch.cat([vectors, torch.zeros(1, dim)])  # [U+1, dim], last row = non-sign
    pg = {"key": key, "vocab": vocab, "prototypes": prototypes, "labels": labels}
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
    torch.save(pg, tmp)
    os.replace(tmp, cache)
    return pg


def multi_hot(names, pg) -> torch.Tensor:
    """Paper §3.2: the multi-hot pseudo-gloss targets H [B, U] of a batch of videos."""
    h = torch.zeros(len(names), len(pg["vocab"]))
    for i, name in enumerate(names):
        if name not in pg["labels"]:
            raise KeyError(f"video '{name}' has no pseudo-gloss labels (rebuild the pseudo-gloss cache for this root)")
        h[i, pg["labels"][name]] = 1.0
    return h


# -----------------------------------------------------------------------------
# command line


def main():
    """CLI: builds and caches the pseudo-glosses of a root and prints their vocabulary sizes and examples."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic", help="phoenix14t, synthetic, or a PHOENIX14T-layout folder")
    p.add_argument("--vocab-splits", nargs="+", default=["train"], choices=data.SPLITS)
    p.add_argument("--fasttext", default=None, help="fastText binary for the prototypes (cc.de.300.bin)")
    p.add_argument("--cache-dir", default=None, help="where to cache (default: the data root)")
    p.add_argument("--examples", type=int, default=5)
    args = p.parse_args()
    root = data.resolve_root(args.data)
    pg = build_pseudoglosses(root, args.vocab_splits, args.fasttext, args.cache_dir)
    print(f"tagger: {_pos_tagger()[0]}")
    present = [s for s in data.SPLITS if data.annotation_path(root, s).is_file()]
    rows = {s: read_translations(root, s) for s in present}
    for chosen in [[s] for s in present] + [present]:
        n = len({g for s in chosen for _, t in rows[s] for g in extract(t)})
        print(f"pseudo-gloss vocabulary of {'+'.join(chosen)}: {n}")
    print(f"cached vocabulary ({'+'.join(args.vocab_splits)}): {len(pg['vocab'])}, "
          f"prototypes {tuple(pg['prototypes'].shape)}")
    for _, sentence in rows[args.vocab_splits[0]][:args.examples]:
        print(f"  {sentence}\n    -> {' '.join(extract(sentence))}")


if __name__ == "__main__":
    main()
