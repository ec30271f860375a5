"""
Pseudo-glosses (paper §3.2 "Pseudo-Gloss Pretraining"; DESIGN.md "Pseudo-glosses"): POS-tag and
lemmatise every German translation, keep the lemmas whose universal POS is NOUN, NUM, ADV, PRON,
PROPN, ADJ or VERB, lower-cased. Each pseudo-gloss gets a 300-d fastText prototype, plus a zero
"non-sign" row; the multi-hot labels H of eq. 3 say which pseudo-glosses a video's sentence holds.

    python pseudogloss.py --data synthetic
    python pseudogloss.py --data phoenix14t [--vocab-splits train]
    python pseudogloss.py --gold pseudogloss_gold.tsv                 # P/R/F1 of every tagger
    python pseudogloss.py --data phoenix14t --weather-check           # weather nouns, vocabulary: before/after
"""

import argparse
import functools
import hashlib
import json
import math
import os
import pickle
import re
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

import data

KEEP_POS = {"NOUN", "NUM", "ADV", "PRON", "PROPN", "ADJ", "VERB"}
SPACY_MODELS = ("de_dep_news_trf", "de_core_news_lg", "de_core_news_md", "de_core_news_sm")  # the authors' first

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

# HanTa ways of tagging PHOENIX14T's lower-case text, measured on pseudogloss_gold.tsv and on the weather
# nouns of the training text by `python pseudogloss.py --gold pseudogloss_gold.tsv --data ROOT --weather-check`
# (DESIGN.md "Pseudo-glosses"). HanTa's case model takes a lower-case word for a non-noun ("regen" -> rege,
# "hagel" -> hageln), so the default puts back the capital of the words its lexicon scores higher capitalised.
HANTA_MODES = {
    "hanta-cased": "HanTa as is (casesensitive=True): lower-case nouns read as verbs and adjectives",
    "hanta-uncased": "HanTa with casesensitive=False: the case model is off",
    "hanta-twopass": "uncased tags first, capitals put back on its NN/NE, then tagged cased",
    "hanta-truecase": "capitals put back where HanTa's lexicon scores the capitalised word higher, then tagged cased",
    "hanta-uncased+fix": "hanta-uncased, then the lemma fixes below",
    "hanta-truecase+fix": "hanta-truecase, then the lemma fixes below (the default without spaCy)",
}
HANTA_DEFAULT = "hanta-truecase+fix"
# Lemma fixes for the default: HanTa segments "schauern" as Schau+ern (127 of 734 'schauer' tokens in the
# training text) and leaves pronouns in their case form; pronouns take their nominative (gold-set convention).
NOUN_SUFFIX_LEMMAS = {"schauern": "schauer"}  # also compounds: regenschauern -> regenschauer
PRONOUN_LEMMAS = {"mir": "ich", "mich": "ich", "dir": "du", "dich": "du", "uns": "wir", "euch": "ihr",
                  "ihnen": "sie", "ihm": "er", "ihn": "er"}


@functools.lru_cache(maxsize=None)
def _pos_tagger(name=None):
    """The German POS tagger and lemmatiser of DESIGN.md "Pseudo-glosses": spaCy if installed, else HanTa (name
    picks a HanTa mode); loaded once."""
    if name is None:
        try:
            import spacy
        except ImportError:
            spacy = None
        if spacy is not None:
            for model in SPACY_MODELS:
                try:
                    nlp = spacy.load(model)
                except OSError:
                    continue
                nlp.select_pipes(disable=[p for p in ("parser", "ner") if p in nlp.pipe_names])  # tags and lemmas only
                return "spacy:" + model, nlp
        name = HANTA_DEFAULT
    if name not in HANTA_MODES:
        raise ValueError(f"tagger '{name}': expected one of {', '.join(HANTA_MODES)}")
    try:
        from HanTa import HanoverTagger
    except ImportError as e:
        raise ImportError("pseudogloss.py needs a German POS tagger: pip install HanTa "
                          f"(or spaCy with one of {', '.join(SPACY_MODELS)})") from e
    return name, _hanta(HanoverTagger)


@functools.lru_cache(maxsize=None)
def _hanta(module):
    """HanTa's German model, loaded once for all modes."""
    return module.HanoverTagger("morphmodel_ger.pgz")


@functools.lru_cache(maxsize=None)
def _capitalise(word):
    """hanta-truecase: the word with the casing HanTa's lexicon and case model score higher, out of context."""
    tagger = _pos_tagger(HANTA_DEFAULT)[1]
    if not word.isalpha() or not word.islower():
        return word
    def best(w):
        scores = tagger.tag_word(w, casesensitive=True)  # [(tag, log p(w, upcase | tag))], best first
        return scores[0][1] if scores else -math.inf
    cap = word[0].upper() + word[1:]
    return cap if best(cap) > best(word) else word


def _upos(stts):
    """Universal POS of a HanTa tag ('VV(FIN)' -> VERB)."""
    return STTS_TO_UPOS.get(stts.replace("(", "").replace(")", ""), "X")


def _fix_lemma(word, lemma, upos):
    """hanta-truecase+fix: the lemma with PRONOUN_LEMMAS and NOUN_SUFFIX_LEMMAS applied."""
    if upos == "PRON":
        return PRONOUN_LEMMAS.get(word, lemma)
    if upos in ("NOUN", "PROPN"):
        for suffix, base in NOUN_SUFFIX_LEMMAS.items():
            if word.endswith(suffix):
                return word[:len(word) - len(suffix)] + base
    return lemma


@functools.lru_cache(maxsize=None)
def tag_sentence(sentence, tagger=None):
    """(word, lower-case lemma, universal POS) of every token of a sentence; tagger: None (default) or a
    HANTA_MODES name."""
    name, model = _pos_tagger(tagger)
    if name.startswith("spacy"):
        return tuple((t.text, t.lemma_.lower(), t.pos_) for t in model(sentence))
    words = re.findall(r"\w+(?:-\w+)*|[^\w\s]", sentence)
    if not words:
        return ()
    mode = name.removesuffix("+fix")
    if mode == "hanta-cased":
        tagged = model.tag_sent(words, taglevel=1)  # [(word, lemma, 'VV(FIN)')]
    elif mode == "hanta-uncased":
        tagged = model.tag_sent(words, taglevel=1, casesensitive=False)
    elif mode == "hanta-twopass":
        first = model.tag_sent(words, taglevel=1, casesensitive=False)
        tagged = model.tag_sent([w[0].upper() + w[1:] if t in ("NN", "NE") else w for w, _, t in first], taglevel=1)
    else:
        tagged = model.tag_sent([_capitalise(w) for w in words], taglevel=1)
    out = tuple((w, lemma.lower(), _upos(t)) for w, (_, lemma, t) in zip(words, tagged))
    if name.endswith("+fix"):
        out = tuple((w, _fix_lemma(w.lower(), lemma, upos), upos) for w, lemma, upos in out)
    return out


def extract(sentence: str, tagger=None) -> list[str]:
    """Paper §3.2: the pseudo-glosses of one translation, lower-case lemmas of NOUN/NUM/ADV/PRON/PROPN/ADJ/VERB
    tokens, in order."""
    return [lemma for _, lemma, upos in tag_sentence(sentence, tagger) if upos in KEEP_POS]


# -----------------------------------------------------------------------------
# measuring the tagger (DESIGN.md "Pseudo-glosses")

# The weather nouns of issue G and the surface forms counted as their occurrences: the whole word in one of
# its singular or plural case forms (compounds such as regenschauer are not counted). "abends" (an adverb)
# and "blitzen", "donnern" (also the verbs' infinitives) are left out.
WEATHER_NOUNS = {
    "regen": "regen regens", "nacht": "nacht nächte nächten", "abend": "abend abende abenden abendes",
    "blitz": "blitz blitzes blitze", "donner": "donner donners", "glätte": "glätte", "hagel": "hagel hagels",
    "nebel": "nebel nebels", "schnee": "schnee schnees", "sturm": "sturm sturms sturmes stürme stürmen",
    "wolke": "wolke wolken", "schauer": "schauer schauers schauern",
}


def read_gold(path):
    """(sentence, pseudo-glosses) pairs of a gold file: sentence<TAB>space-separated pseudo-glosses, '#' comments."""
    pairs = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            sentence, glosses = line.split("\t")
            pairs.append((sentence, glosses.split()))
    return pairs


def gold_scores(pairs, tagger=None):
    """Micro-averaged precision, recall, F1 of extract() against gold pseudo-glosses, multiset match per sentence."""
    hit = predicted = expected = 0
    for sentence, gold in pairs:
        got = extract(sentence, tagger)
        hit += sum((Counter(got) & Counter(gold)).values())
        predicted, expected = predicted + len(got), expected + len(gold)
    p, r = hit / max(predicted, 1), hit / max(expected, 1)
    return p, r, 2 * p * r / max(p + r, 1e-12)


def weather_shares(sentences, tagger=None):
    """{noun: (occurrences whose pseudo-gloss is the noun, occurrences)} over WEATHER_NOUNS' forms."""
    noun_of = {form: noun for noun, forms in WEATHER_NOUNS.items() for form in forms.split()}
    kept, total = Counter(), Counter()
    for sentence in sentences:
        for word, lemma, upos in tag_sentence(sentence, tagger):
            noun = noun_of.get(word.lower())
            if noun:
                total[noun] += 1
                kept[noun] += upos in KEEP_POS and lemma == noun
    return {noun: (kept[noun], total[noun]) for noun in WEATHER_NOUNS}


def read_translations(root, split):
    """(name, translation) pairs of a split, read as data.read_split reads the annotation CSV."""
    return [(r["name"], r["translation"]) for r in data.read_split(root, split)]


# -----------------------------------------------------------------------------
# vocabulary, prototypes and labels


def _skipgram_vectors(sentences, words, dim, seed, workdir):
    """DESIGN.md "Pseudo-glosses": 300-d skip-gram fastText trained on the training translations when no
    cc.de.300.bin is given."""
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


def _read_cache(cache: Path, key: dict):
    """The pseudo-glosses cached in `cache` for `key`; None when there is none, it is for another key, or it is
    damaged (cut off, not a torch file, foreign objects, fields missing), which is said, naming the file."""
    if not cache.is_file():
        return None
    try:
        pg = torch.load(cache, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only refused an object: not a cache this project writes
        pg, why = None, "it holds Python objects other than tensors and plain values"
    except Exception as e:  # EOFError, RuntimeError (not a zip), ...: whatever a cut-off file makes torch raise
        pg, why = None, f"{type(e).__name__}: cut off or not a torch file"
    else:
        if isinstance(pg, dict) and pg.get("key") != key:
            return None  # built from other annotations or options: rebuilt, as nothing is wrong with it
        fields = isinstance(pg, dict) and isinstance(pg.get("vocab"), list) and isinstance(pg.get("labels"), dict) \
            and isinstance(pg.get("prototypes"), torch.Tensor) and len(pg["prototypes"]) == len(pg["vocab"]) + 1
        why = None if fields else "vocab, prototypes or labels missing or inconsistent"
    if why:
        print(f"pseudo-gloss cache '{cache}' is damaged ({why}); rebuilding it", flush=True)
        return None
    return pg


def build_pseudoglosses(root, splits=None, fasttext_path=None, cache_dir=None, dim=300, seed=0) -> dict:
    """Paper §3.2: the vocabulary of `splits` (default: every split present, "all pseudo-glosses in the dataset" as
    the paper and the authors' code have it), prototypes P [U+1, dim] (last row non-sign), labels of every video;
    cached in `cache_dir` when given (pretrain.py: <out>/cache; never the data root, which may be read-only), and
    rebuilt when the cache is stale or damaged (DESIGN.md "Pseudo-glosses")."""
    root = Path(root)
    present = [s for s in data.SPLITS if data.annotation_path(root, s).is_file()]
    splits = tuple(splits or present)
    rows = {s: read_translations(root, s) for s in dict.fromkeys(list(splits) + present)}
    digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()
    key = {"splits": list(splits), "fasttext": str(Path(fasttext_path).resolve()) if fasttext_path else None,
           "dim": dim, "seed": seed, "tagger": _pos_tagger()[0], "annotations": digest}
    cache = Path(cache_dir) / f"pseudoglosses-{'-'.join(splits)}.pt" if cache_dir else None
    pg = _read_cache(cache, key) if cache else None
    if pg is not None:
        return pg

    vocab = sorted({g for s in splits for _, sentence in rows[s] for g in extract(sentence)})
    index = {g: i for i, g in enumerate(vocab)}
    labels = {name: [index[g] for g in extract(sentence) if g in index] for s in rows for name, sentence in rows[s]}
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
    if fasttext_path:
        vectors = _pretrained_vectors(fasttext_path, vocab, dim)
    else:
        train_text = [t for _, t in rows["train" if "train" in rows else splits[0]]]
        vectors = _skipgram_vectors(train_text, vocab, dim, seed, cache.parent if cache else None)
    prototypes = torch.cat([vectors, torch.zeros(1, dim)])  # [U+1, dim], last row = non-sign
    pg = {"key": key, "vocab": vocab, "prototypes": prototypes, "labels": labels}
    if cache:
        data.atomic_write(cache, lambda tmp: torch.save(pg, tmp))
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


def report(root, gold=None, weather_check=False, taggers=None):
    """CLI --gold / --weather-check: P/R/F1 of each tagger on the gold file; weather-noun shares and vocabulary on
    the real text."""
    taggers = taggers or ([None] + [t for t in HANTA_MODES if t != _pos_tagger()[0]] if gold else ["hanta-cased", None])
    names = [_pos_tagger(t)[0] + (" (default)" if t is None else "") for t in taggers]
    if gold:
        pairs = read_gold(gold)
        print(f"{gold}: {len(pairs)} sentences, {sum(len(g) for _, g in pairs)} pseudo-glosses")
        print(f"{'tagger':32s} {'P':>6s} {'R':>6s} {'F1':>6s}")
        for t, name in zip(taggers, names):
            print(f"{name:32s} " + " ".join(f"{x:6.3f}" for x in gold_scores(pairs, t)))
    if weather_check:
        present = [s for s in data.SPLITS if data.annotation_path(root, s).is_file()]
        rows = {s: [t for _, t in read_translations(root, s)] for s in present}
        train = rows.get("train", rows[present[0]])
        print(f"weather nouns in {'train' if 'train' in rows else present[0]} ({len(train)} translations): "
              "share of occurrences whose pseudo-gloss is the noun's lemma")
        for t, name in zip(taggers, names):
            shares = weather_shares(train, t)
            kept, total = (sum(x[i] for x in shares.values()) for i in (0, 1))
            vocab = {g for s in present for sentence in rows[s] for g in extract(sentence, t)}
            print(f"{name:32s} {kept}/{total} = {kept / max(total, 1):.2%}; pseudo-gloss vocabulary of "
                  f"{'+'.join(present)}: {len(vocab)}")
            print("    " + ", ".join(f"{n} {k}/{m}" for n, (k, m) in shares.items()))


def main():
    """CLI: builds and caches the pseudo-glosses of a root and prints their vocabulary sizes and examples; or
    measures the tagger."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic", help="phoenix14t, synthetic, or a PHOENIX14T-layout folder")
    p.add_argument("--vocab-splits", nargs="+", choices=data.SPLITS, help="default: every split present")
    p.add_argument("--fasttext", default=None, help="fastText binary for the prototypes (cc.de.300.bin)")
    p.add_argument("--cache-dir", default=None, help="where to cache them (default: nowhere; pretrain.py caches "
                   "them in <out>/cache)")
    p.add_argument("--examples", type=int, default=5, help="sentences to print with their pseudo-glosses")
    p.add_argument("--gold", default=None, help="measure: P/R/F1 of every tagger on a gold file (pseudogloss_gold.tsv)")
    p.add_argument("--weather-check", action="store_true",
                   help="measure: weather-noun lemma shares and vocabulary of --data, before (hanta-cased) and "
                   "after (default)")
    p.add_argument("--taggers", nargs="+", default=None, choices=["default"] + list(HANTA_MODES),
                   help="taggers to measure (default: all with --gold, hanta-cased and the default otherwise)")
    args = p.parse_args()
    if args.gold or args.weather_check:
        taggers = [None if t == "default" else t for t in args.taggers] if args.taggers else None
        root = data.resolve_root(args.data) if args.weather_check else None
        report(root, args.gold, args.weather_check, taggers)
        return
    root = data.resolve_root(args.data)
    pg = build_pseudoglosses(root, args.vocab_splits, args.fasttext, args.cache_dir)
    present = [s for s in data.SPLITS if data.annotation_path(root, s).is_file()]
    args.vocab_splits = args.vocab_splits or present
    print(f"tagger: {_pos_tagger()[0]}")
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
