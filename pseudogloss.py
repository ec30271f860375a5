"""
Pseudo-glosses and the text tokenizer.

Pseudo-glosses (paper §3.2 "Pseudo-Gloss Pretraining", DESIGN "Pseudo-glosses"): POS-tag and
lemmatise every German translation, keep the lemmas whose universal POS is NOUN, NUM, ADV, PRON,
PROPN, ADJ or VERB, lower-cased. Each pseudo-gloss gets a 300-d fastText prototype, plus a zero
"non-sign" row. Tokenizer (DESIGN "Tokenizer"): mBART-cc25's, trimmed to the training text, or a
small sentencepiece model trained on it.

    python pseudogloss.py --data synthetic
    python pseudogloss.py --data phoenix14t --vocab-splits train dev test
"""

import argparse
import functools
import hashlib
import io
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
    """The German POS tagger and lemmatiser of DESIGN "Pseudo-glosses": spaCy if installed, else HanTa; loaded once."""
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
    """DESIGN "Pseudo-glosses": 300-d skip-gram fastText trained on the training translations when no cc.de.300.bin is given."""
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
    """DESIGN "Pseudo-glosses": the user's fastText binary (cc.de.300.bin) looked up for every pseudo-gloss."""
    import fasttext
    if not Path(path).is_file():
        raise FileNotFoundError(f"--fasttext {path}: file not found (expected a fastText .bin such as cc.de.300.bin)")
    model = fasttext.load_model(str(path))
    if model.get_dimension() != dim:
        raise ValueError(f"--fasttext {path} has {model.get_dimension()}-d vectors, the prototypes need {dim}")
    return torch.from_numpy(np.array([model.get_word_vector(w) for w in words], np.float32).reshape(len(words), dim))


def build_pseudoglosses(root, splits=("train",), fasttext_path=None, cache_dir=None, dim=300, seed=0) -> dict:
    """Paper §3.2 / DESIGN "Pseudo-glosses": vocabulary of `splits`, prototypes P [U+1, dim] (last row non-sign), labels of every video; cached."""
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
# tokenizer


class Tokenizer:
    """DESIGN "Tokenizer": trimmed mBART-cc25 (paper preset) or a small sentencepiece model (tiny preset), one interface."""

    def __init__(self, kind, model, keep_ids=None):
        self.kind, self.model = kind, model
        if kind == "sentencepiece":
            self.keep_ids = None
            self.vocab_size = model.get_piece_size()
            self.bos_id, self.pad_id, self.eos_id, self.unk_id = model.bos_id(), model.pad_id(), model.eos_id(), model.unk_id()
            self.lang_id = model.piece_to_id("de_DE")
        else:
            self.keep_ids = torch.as_tensor(keep_ids, dtype=torch.long)
            self._new_id = {old: new for new, old in enumerate(self.keep_ids.tolist())}
            self.vocab_size = len(self.keep_ids)
            self.bos_id, self.pad_id = self._new_id[model.bos_token_id], self._new_id[model.pad_token_id]
            self.eos_id, self.unk_id = self._new_id[model.eos_token_id], self._new_id[model.unk_token_id]
            self.lang_id = self._new_id[model.convert_tokens_to_ids("de_DE")]
        self.special_ids = {self.bos_id, self.pad_id, self.eos_id, self.unk_id, self.lang_id}

    def encode(self, sentence: str) -> list[int]:
        """Content token ids of one sentence, no special tokens."""
        if self.kind == "sentencepiece":
            return self.model.encode(sentence)
        old = self.model(sentence, add_special_tokens=False)["input_ids"]
        return [self._new_id.get(i, self.unk_id) for i in old]

    def decode(self, ids) -> str:
        """The sentence of a token id sequence, special tokens dropped."""
        ids = [int(i) for i in ids if int(i) not in self.special_ids]
        if self.kind == "sentencepiece":
            return self.model.decode(ids)
        return self.model.decode(self.keep_ids[ids].tolist(), skip_special_tokens=True).strip()

    def save(self, out_dir):
        """Writes the tokenizer to out_dir (tokenizer.json + spm.model or mbart-tokenizer/)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind}
        if self.kind == "sentencepiece":
            (out_dir / "spm.model").write_bytes(self.model.serialized_model_proto())
        else:
            self.model.save_pretrained(str(out_dir / "mbart-tokenizer"))
            meta["keep_ids"] = self.keep_ids.tolist()
        (out_dir / "tokenizer.json").write_text(json.dumps(meta))

    @classmethod
    def load(cls, out_dir):
        """Reads a tokenizer that save() wrote to out_dir."""
        out_dir = Path(out_dir)
        meta = json.loads((out_dir / "tokenizer.json").read_text())
        if meta["kind"] == "sentencepiece":
            import sentencepiece as spm
            return cls("sentencepiece", spm.SentencePieceProcessor(model_file=str(out_dir / "spm.model")))
        from transformers import MBartTokenizer
        hf = MBartTokenizer.from_pretrained(str(out_dir / "mbart-tokenizer"), src_lang="de_DE", tgt_lang="de_DE")
        return cls("mbart", hf, meta["keep_ids"])


def build_sentencepiece(sentences, vocab_size=1000) -> Tokenizer:
    """DESIGN "Tokenizer", tiny preset: sentencepiece on the training translations; <s>=0 <pad>=1 </s>=2 <unk>=3 de_DE=4."""
    import sentencepiece as spm
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=proto, vocab_size=vocab_size, hard_vocab_limit=False,
        model_type="unigram", character_coverage=1.0, bos_id=0, pad_id=1, eos_id=2, unk_id=3,
        user_defined_symbols=["de_DE"], num_threads=1, minloglevel=2)
    return Tokenizer("sentencepiece", spm.SentencePieceProcessor(model_proto=proto.getvalue()))


def build_mbart(sentences, name_or_path="facebook/mbart-large-cc25") -> Tokenizer:
    """DESIGN "Tokenizer", paper preset: mBART-cc25's tokenizer kept to <s> <pad> </s> <unk>, de_DE and the tokens the training text uses."""
    from transformers import MBartTokenizer
    try:
        hf = MBartTokenizer.from_pretrained(name_or_path, src_lang="de_DE", tgt_lang="de_DE")
    except Exception as e:
        raise OSError(f"cannot load the mBART tokenizer '{name_or_path}' ({e}); download it once or pass "
                      "--mbart PATH to a local copy of facebook/mbart-large-cc25") from e
    specials = [hf.bos_token_id, hf.pad_token_id, hf.eos_token_id, hf.unk_token_id, hf.convert_tokens_to_ids("de_DE")]
    used = {i for s in sentences for i in hf(s, add_special_tokens=False)["input_ids"]}
    return Tokenizer("mbart", hf, specials + sorted(used - set(specials)))  # mBART's 0..3 stay 0..3, de_DE -> 4


def load_or_build_tokenizer(kind, sentences, out_dir, mbart_name="facebook/mbart-large-cc25") -> Tokenizer:
    """DESIGN "Tokenizer": builds the `kind` tokenizer from the training sentences once, saves it in out_dir, later loads it."""
    out_dir = Path(out_dir)
    if kind not in ("mbart", "sentencepiece"):
        raise ValueError(f"tokenizer kind '{kind}': expected 'mbart' or 'sentencepiece'")
    if (out_dir / "tokenizer.json").is_file():
        tok = Tokenizer.load(out_dir)
        if tok.kind != kind:
            raise ValueError(f"{out_dir / 'tokenizer.json'} holds a '{tok.kind}' tokenizer, not '{kind}': use another output folder")
        return tok
    sentences = list(sentences)
    tok = build_mbart(sentences, mbart_name) if kind == "mbart" else build_sentencepiece(sentences)
    tok.save(out_dir)
    return tok


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
