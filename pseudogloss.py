"""Pseudo-glosses (paper §3.2 "Pseudo-Gloss Pretraining"; DESIGN.md "Pseudo-glosses"): POS-tag and lemmatise every
translation, keep the lemmas whose universal POS is NOUN, NUM, ADV, PRON, PROPN, ADJ or VERB, lower-cased. Each
pseudo-gloss gets a 300-d fastText prototype, plus a zero "non-sign" row; the multi-hot labels H of eq. 3 say
which pseudo-glosses a video's sentence holds. German is tagged here (the paper's PHOENIX14T); English and
Chinese in corpora/taggers.py; `python -m tools.tagger_scores` measures the taggers.
"""
import dataclasses
import functools
import math
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

import data
from corpora import fasttext_bin, taggers

CC_VECTORS = "facebook/fasttext-{lang}-vectors"  # fastText's cc.<lang>.300 (Grave et al. 2018) on the Hub: model.bin
VERSION = 2  # of how pseudo-glosses are built, in the cache key (2: Chinese segmented for skip-gram)
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
# HanTa's case model takes a lower-case word for a non-noun ("regen" -> rege, "hagel" -> hageln), and PHOENIX14T's
# text is lower-case: each word gets back the casing HanTa's lexicon scores higher (_capitalise) before tagging.
# Two lemma fixes: HanTa segments "schauern" as Schau+ern (127 of 734 'schauer' tokens in the training text) and
# leaves pronouns in their case form; pronouns take their nominative (DESIGN.md "Pseudo-glosses").
NOUN_SUFFIX_LEMMAS = {"schauern": "schauer"}  # also compounds: regenschauern -> regenschauer
PRONOUN_LEMMAS = {"mir": "ich", "mich": "ich", "dir": "du", "dich": "du", "uns": "wir", "euch": "ihr",
                  "ihnen": "sie", "ihm": "er", "ihn": "er"}


@functools.lru_cache(maxsize=None)
def _pos_tagger():
    """The German POS tagger and lemmatiser of DESIGN.md "Pseudo-glosses": spaCy if installed, else HanTa;
    loaded once. -> (name, tagger)"""
    nlp = taggers.spacy_pipeline(SPACY_MODELS)
    if nlp is not None:
        return "spacy:" + nlp.meta["lang"] + "_" + nlp.meta["name"], nlp
    try:
        from HanTa import HanoverTagger
    except ImportError as e:
        raise ImportError("pseudogloss.py needs a German POS tagger: pip install HanTa "
                          f"(or spaCy with one of {', '.join(SPACY_MODELS)})") from e
    return "hanta-truecase+fix", HanoverTagger.HanoverTagger("morphmodel_ger.pgz")


@functools.lru_cache(maxsize=None)
def _capitalise(word):
    """The word with the casing that HanTa's lexicon and case model score higher, out of context."""
    if not word.isalpha() or not word.islower():
        return word
    hanta = _pos_tagger()[1]

    def best(w):
        scores = hanta.tag_word(w, casesensitive=True)  # [(tag, log p(w, upcase | tag))], best first
        return scores[0][1] if scores else -math.inf
    cap = word[0].upper() + word[1:]
    return cap if best(cap) > best(word) else word


def _fix_lemma(word, lemma, upos):
    """The lemma with PRONOUN_LEMMAS and NOUN_SUFFIX_LEMMAS applied."""
    if upos == "PRON":
        return PRONOUN_LEMMAS.get(word, lemma)
    if upos in ("NOUN", "PROPN"):
        for suffix, base in NOUN_SUFFIX_LEMMAS.items():
            if word.endswith(suffix):
                return word[:len(word) - len(suffix)] + base
    return lemma


@functools.lru_cache(maxsize=None)
def tag_sentence(sentence, lang="de"):
    """(word, lower-case lemma, universal POS) of every token of a sentence in `lang` (de, en, zh)."""
    if lang != "de":
        return taggers.tag(sentence, lang)
    name, model = _pos_tagger()
    if name.startswith("spacy"):
        return tuple((t.text, t.lemma_.lower(), t.pos_) for t in model(sentence))
    words = re.findall(r"\w+(?:-\w+)*|[^\w\s]", sentence)
    tagged = model.tag_sent([_capitalise(w) for w in words], taglevel=1) if words else []  # [(w, lemma, 'VV(FIN)')]
    upos = [STTS_TO_UPOS.get(t.replace("(", "").replace(")", ""), "X") for _, _, t in tagged]
    return tuple((w, _fix_lemma(w.lower(), lemma.lower(), u), u) for w, (_, lemma, _), u in zip(words, tagged, upos))


def extract(sentence: str, lang="de") -> list[str]:
    """Paper §3.2: the pseudo-glosses of one translation in language `lang` (de, en, zh), lower-case lemmas of
    NOUN/NUM/ADV/PRON/PROPN/ADJ/VERB tokens, in order."""
    return [lemma for _, lemma, upos in tag_sentence(sentence, lang) if upos in KEEP_POS]


def tagger_name(lang="de") -> str:
    """The default tagger of a language, by name (it enters the pseudo-gloss cache's key)."""
    return _pos_tagger()[0] if lang == "de" else taggers.tagger(lang)[0]


def read_translations(root, split):
    """(name, translation) pairs of a split, read as data.read_split reads the annotation CSV."""
    return [(r["name"], r["translation"]) for r in data.read_split(root, split)]


def _skipgram_model(sentences, dim, workdir):
    """DESIGN.md "Pseudo-glosses": 300-d skip-gram fastText trained on the training translations when no
    cc.de.300.bin is given (`sentences`: words separated by spaces). Runs beside the tagging: fastText's
    trainer releases the GIL."""
    import fasttext
    # fastText's Python trainer seeds its RNG with 0 and takes no seed argument; thread=1 makes it
    # deterministic, so the seed only enters the cache key. t=1 turns off frequent-word subsampling,
    # which on a corpus of a few thousand sentences drops most tokens and leaves near-parallel vectors.
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=workdir, delete=False, encoding="utf-8") as f:
        f.write("\n".join(sentences) + "\n")
    try:
        return fasttext.train_unsupervised(f.name, model="skipgram", dim=dim, epoch=20, minCount=1, t=1.0,
                                           thread=1, verbose=0)
    finally:
        os.unlink(f.name)


def fasttext_model_file(choice: str, lang: str):
    """--fasttext as build_pseudoglosses' fasttext_path: None for skipgram, the user's file, or for cc fastText's
    cc.<lang>.300.bin (the paper's), fetched from the Hub once and cached as DINOv2 and mBART are; its size is said
    before the download. Prints which prototypes the run uses."""
    if choice == "skipgram":
        print("prototypes: a 300-d skip-gram fastText trained on the training translations (--fasttext skipgram)",
              flush=True)
        return None
    path = _cc_vectors(lang) if choice == "cc" else choice
    print(f"prototypes: fastText's cc.{lang}.300 vectors (the paper's), {CC_VECTORS.format(lang=lang)}: '{path}'"
          if choice == "cc" else f"prototypes: the fastText vectors of '{path}' (--fasttext)", flush=True)
    return path


def _cc_vectors(lang):
    """The path of cc.<lang>.300.bin in the Hugging Face cache, downloaded first if it is not there."""
    import huggingface_hub
    repo = CC_VECTORS.format(lang=lang)
    if not isinstance(huggingface_hub.try_to_load_from_cache(repo, "model.bin"), str):
        try:
            size = huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(repo, "model.bin")).size
        except Exception:  # offline, a proxy: only the printed size is lost
            size = None
        size = f"{size / 1e9:.1f} GB" if size else "about 7 GB"
        print(f"prototypes: downloading fastText's cc.{lang}.300 vectors (the paper's), {repo} model.bin: {size}, "
              "once, into the Hugging Face cache (--fasttext skipgram trains a skip-gram instead)", flush=True)
    try:
        return huggingface_hub.hf_hub_download(repo, "model.bin")
    except (OSError, ValueError) as e:
        raise SystemExit(f"could not fetch fastText's cc.{lang}.300 vectors ({repo}, model.bin: {type(e).__name__}: "
                         f"{e}).\nDownload cc.{lang}.300.bin where the hub is reachable and pass it with --fasttext "
                         "FILE, or pass --fasttext skipgram") from None


def _pretrained_model(path, dim):
    """DESIGN.md "Pseudo-glosses": the user's fastText binary (cc.de.300.bin)."""
    import fasttext
    if not Path(path).is_file():
        raise FileNotFoundError(f"--fasttext {path}: file not found (expected a fastText .bin such as cc.de.300.bin)")
    fasttext_bin.check(str(path))  # fastText itself reads past the end of a cut-off file, unchecked
    model = fasttext.load_model(str(path))
    if model.get_dimension() != dim:
        raise ValueError(f"--fasttext {path} has {model.get_dimension()}-d vectors, the prototypes need {dim}")
    return model


@dataclasses.dataclass
class PseudoGlosses:
    """Paper §3.2's pseudo-glosses of a dataset: the vocabulary (U lemmas, sorted), the prototypes P [U+1, dim]
    (fastText vectors, the last row the zero non-sign vector), every video's labels (indices into the vocabulary,
    in sentence order) and what they were made from (harness/pseudogloss_cache.py's key; {} when not cached)."""
    vocab: list
    prototypes: torch.Tensor
    labels: dict
    key: dict = dataclasses.field(default_factory=dict)


def read_rows(root, splits=None) -> tuple:
    """The splits whose vocabulary is built (default: every split present) and the (name, translation) pairs of
    those and of every split present (labels are made for all). -> (splits, split -> pairs)"""
    root = Path(root)
    present = data.present_splits(root)
    splits = tuple(splits or present)
    return splits, {s: read_translations(root, s) for s in dict.fromkeys(list(splits) + present)}


def build_pseudoglosses(root, splits=None, fasttext_path=None, dim=300, lang="de", rows=None) -> PseudoGlosses:
    """Paper §3.2: the vocabulary of `splits` (default: every split present, "all pseudo-glosses in the dataset" as
    the paper and the authors' code have it), prototypes P [U+1, dim] (last row non-sign), labels of every video;
    translations in language `lang` (de, en, zh); `rows` as read_rows gives them (read when None). Built from
    scratch: harness/pseudogloss_cache.py keeps them for later runs."""
    if lang not in data.LANGS:
        raise ValueError(f"language '{lang}': expected one of {', '.join(data.LANGS)}")
    splits, rows = (tuple(splits), rows) if rows is not None else read_rows(root, splits)
    # the skip-gram prototypes train on one core while the translations are tagged on another
    train_text = [t for _, t in rows["train" if "train" in rows else splits[0]]]
    if lang == "zh":  # written without spaces: skip-gram's words are the tagger's (one "word" a sentence before)
        train_text = [" ".join(w for w, _, _ in tag_sentence(t, lang)) for t in train_text]
    with ThreadPoolExecutor(1) as pool:
        if fasttext_path:
            model = pool.submit(_pretrained_model, fasttext_path, dim)
        else:
            model = pool.submit(_skipgram_model, train_text, dim, None)
        glosses = {s: [(name, extract(sentence, lang=lang)) for name, sentence in rows[s]] for s in rows}
        vocab = sorted({g for s in splits for _, found in glosses[s] for g in found})
        index = {g: i for i, g in enumerate(vocab)}
        labels = {name: [index[g] for g in found if g in index] for s in glosses for name, found in glosses[s]}
        model = model.result()
    vectors = np.array([model.get_word_vector(w) for w in vocab], np.float32).reshape(len(vocab), dim)
    prototypes = torch.cat([torch.from_numpy(vectors), torch.zeros(1, dim)])  # [U+1, dim], last row = non-sign
    return PseudoGlosses(vocab, prototypes, labels)


def multi_hot(names, pg: PseudoGlosses) -> torch.Tensor:
    """Paper §3.2: the multi-hot pseudo-gloss targets H [B, U] of a batch of videos."""
    h = torch.zeros(len(names), len(pg.vocab))
    for i, name in enumerate(names):
        if name not in pg.labels:
            raise KeyError(f"video '{name}' has no pseudo-gloss labels (rebuild the pseudo-gloss cache for this root)")
        h[i, pg.labels[name]] = 1.0
    return h
