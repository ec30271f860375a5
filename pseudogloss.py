"""
Pseudo-glosses (paper §3.2 "Pseudo-Gloss Pretraining"; DESIGN.md "Pseudo-glosses"): POS-tag and
lemmatise every translation (German, English or Chinese), keep the lemmas whose universal POS is NOUN, NUM,
ADV, PRON, PROPN, ADJ or VERB, lower-cased. Each pseudo-gloss gets a 300-d fastText prototype, plus a zero
"non-sign" row; the multi-hot labels H of eq. 3 say which pseudo-glosses a video's sentence holds.

    python pseudogloss.py --data synthetic
    python pseudogloss.py --data phoenix14t [--vocab-splits train]
    python pseudogloss.py --gold pseudogloss_gold.tsv                 # P/R/F1 of every tagger
    python pseudogloss.py --gold pseudogloss_gold_en.tsv --lang en    # English (How2Sign), Chinese (CSL-Daily)
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
LANGS = data.LANGS  # PHOENIX14T, How2Sign, CSL-Daily
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
        nlp = _spacy_pipeline(SPACY_MODELS)
        if nlp is not None:
            return "spacy:" + nlp.meta["lang"] + "_" + nlp.meta["name"], nlp
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
def tag_sentence(sentence, tagger=None, lang="de"):
    """(word, lower-case lemma, universal POS) of every token of a sentence; tagger: None (the language's default)
    or, for German, a HANTA_MODES name; lang: de, en or zh."""
    if lang != "de":
        return _tag_en_zh(sentence, tagger, lang)
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


def extract(sentence: str, tagger=None, lang="de") -> list[str]:
    """Paper §3.2: the pseudo-glosses of one translation in language `lang` (de, en, zh), lower-case lemmas of
    NOUN/NUM/ADV/PRON/PROPN/ADJ/VERB tokens, in order."""
    return [lemma for _, lemma, upos in tag_sentence(sentence, tagger, lang) if upos in KEEP_POS]


def tagger_name(lang="de") -> str:
    """The default tagger of a language, by name (it enters the pseudo-gloss cache's key)."""
    return _pos_tagger()[0] if lang == "de" else _en_zh_tagger(lang)[0]


# -----------------------------------------------------------------------------
# English and Chinese (DESIGN.md "Pseudo-glosses in English and Chinese"): the same rule as German.
# spaCy's universal POS where a pipeline of the language is installed (not measured here: none installs
# offline); otherwise HanTa's English model (BNC C5 tags) and jieba's POS tagger, mapped onto the same classes.

SPACY_MODELS_EN_ZH = {"en": ("en_core_web_trf", "en_core_web_lg", "en_core_web_md", "en_core_web_sm"),
                      "zh": ("zh_core_web_trf", "zh_core_web_lg", "zh_core_web_md", "zh_core_web_sm")}
DEFAULT_TAGGERS = {"en": "hanta-en", "zh": "jieba"}

# BNC C5 -> universal POS. be (VB*) and modals (VM0) are AUX like German sein and the modals; do (VD*) and
# have (VH*) are AUX only before a verb (_en_rules), lexical verbs otherwise. Possessive determiners (DPS:
# your, my) are DET, as German's PPOSAT; DT0/DTQ (this, all, what) are DET before what they determine and
# pronouns standing alone (_en_rules). AVP (the particle of "fold up") is ADP like German's separated PTKVZ;
# XX0 (not, n't) is PART like PTKNEG; EX0 (existential there) is PRON like German's "es gibt".
C5_TO_UPOS = {
    **dict.fromkeys(["NN0", "NN1", "NN2"], "NOUN"), "NP0": "PROPN", "CRD": "NUM",
    **dict.fromkeys(["AJ0", "AJC", "AJS", "ORD"], "ADJ"), **dict.fromkeys(["AV0", "AVQ"], "ADV"),
    **dict.fromkeys(["PNP", "PNX", "PNI", "PNQ", "EX0"], "PRON"),
    **dict.fromkeys(["VVB", "VVD", "VVG", "VVI", "VVN", "VVZ"], "VERB"),
    **dict.fromkeys(["VBB", "VBD", "VBG", "VBI", "VBN", "VBZ", "VM0"], "AUX"),
    **dict.fromkeys(["VDB", "VDD", "VDG", "VDI", "VDN", "VDZ", "VHB", "VHD", "VHG", "VHI", "VHN", "VHZ"], "AUX?"),
    **dict.fromkeys(["AT0", "DPS"], "DET"), **dict.fromkeys(["DT0", "DTQ"], "DET?"),
    **dict.fromkeys(["PRP", "PRF", "AVP"], "ADP"), **dict.fromkeys(["CJC", "CJS", "CJT"], "CCONJ"),
    **dict.fromkeys(["TO0", "XX0", "POS"], "PART"), "ITJ": "INTJ",
    **dict.fromkeys(["PUN", "PUL", "PUR", "PUQ"], "PUNCT"),
}
# Pronouns take their nominative, as in German (them -> they); "'s" is tagged PNP only in "let's".
EN_PRONOUN_LEMMAS = {"me": "i", "us": "we", "'s": "we", "him": "he", "her": "she", "them": "they"}
# Clitics split as the Penn Treebank does, before tagging: don't -> do n't, it's -> it 's; can't, won't and
# cannot -> can n't, will n't, can not (HanTa knows "can" and "will" better than "ca" and "wo").
EN_CLITICS = [(r"\b(c)an't\b", r"\1an n't"), (r"\b(w)on't\b", r"\1ill n't"), (r"\b(s)han't\b", r"\1hall n't"),
              (r"\b(c)annot\b", r"\1an not"), (r"(\w)n't\b", r"\1 n't"), (r"(\w)'(s|re|ve|ll|d|m)\b", r"\1 '\2")]
EN_TOKEN = r"n't|'(?:s|re|ve|ll|d|m)\b|\d+(?:[.,:]\d+)+|\w+(?:-\w+)*|[^\w\s]"  # 2.5 and 3-D are one token

# jieba's flags -> universal POS (jieba's tag set is ICTCLAS's: n* nouns, t time, s place, v verbs, a adjectives,
# b non-predicate adjectives, z state words, d adverbs, m numerals, r pronouns, f localisers, q classifiers,
# p prepositions, c conjunctions, u particles, y sentence-final particles, e interjections, x punctuation).
# Localisers (上, 里, 前) are ADP, as UD Chinese has them; a classifier is dropped, or joined to the numeral
# before it (三 个 -> 三个, jieba's own numeral-classifier words); idioms and set phrases (i, l) and
# abbreviations (j) are content words of one piece, kept like nouns.
JIEBA_TO_UPOS = {"n": "NOUN", "t": "NOUN", "s": "NOUN", "v": "VERB", "a": "ADJ", "b": "ADJ", "z": "ADJ",
                 "d": "ADV", "m": "NUM", "r": "PRON", "i": "NOUN", "l": "NOUN", "j": "PROPN", "f": "ADP",
                 "q": "X", "p": "ADP", "c": "CCONJ", "u": "PART", "y": "PART", "e": "INTJ", "o": "INTJ",
                 "x": "PUNCT", "w": "PUNCT"}
ZH_COPULA = {"是"}  # AUX always, like sein and be
ZH_NEGATION = {"不", "没"}  # PART always, like nicht and not
ZH_ASPECT = {"正在"}  # the progressive, AUX like English be + -ing (在 is a preposition, dropped anyway)
# modal verbs: AUX when a verb follows in their clause (能帮我拿, 可以在网上买), lexical verbs otherwise
# (要一杯咖啡, 要半个小时); 没有 and 别: AUX (negation) right before a verb, lexical verbs otherwise (没有时间)
ZH_MODALS = {"能", "会", "要", "可以", "能够", "应该", "应当", "可能", "必须", "得", "该"}
ZH_NEGATING_VERBS = {"没有", "别"}
# 这/那/哪 and the words they begin (这个, 这件, 那种), and 每, 各, 某: DET before a noun or numeral, PRON standing
# alone (我要这个); 每天 is a word of its own (every day), kept
ZH_DEMONSTRATIVES = ("这", "那", "哪")
# jieba's dictionary also holds phrases (我会, 你家, 太冷, 回家吧, 别忘了, 坐地铁), cut into words by _recut: an
# entry that begins with a personal pronoun (Chinese pronouns form no compounds but the plural 们); an entry of a
# content class made of a negation and a verb or adjective (不下雨), of a degree adverb and an adjective (太冷),
# or of a content word and a sentence particle (回家吧); set phrases (l) and idioms (i) that are not
# four-character chengyu, unless the last word is a one-character noun (打火机, 跑步机: compound nouns, whole as
# in German).
ZH_PRONOUN_HEADS = {"我", "你", "他", "她"}
ZH_PHRASE_HEADS = {**dict.fromkeys("不没别", ("v", "a")), **dict.fromkeys("太很真最更", ("a",))}  # -> the rest's class
ZH_PHRASE_TAILS = {"吧", "吗", "呢", "啊", "了"}


@functools.lru_cache(maxsize=None)
def _en_zh_tagger(lang, name=None):
    """The tagger of `lang` (en, zh): spaCy if one of its pipelines is installed, else HanTa's English model or
    jieba's POS tagger; `name` forces one ('hanta-en', 'jieba', 'spacy')."""
    if lang not in SPACY_MODELS_EN_ZH:
        raise ValueError(f"language '{lang}': expected one of {', '.join(LANGS)}")
    if name in (None, "spacy"):
        nlp = _spacy_pipeline(SPACY_MODELS_EN_ZH[lang])
        if nlp is not None:
            return "spacy:" + nlp.meta["lang"] + "_" + nlp.meta["name"], nlp
        if name == "spacy":
            raise ImportError(f"no spaCy pipeline for '{lang}' installed ({', '.join(SPACY_MODELS_EN_ZH[lang])})")
    name = name or DEFAULT_TAGGERS[lang]
    if name != DEFAULT_TAGGERS[lang]:
        raise ValueError(f"tagger '{name}' for '{lang}': expected 'spacy' or '{DEFAULT_TAGGERS[lang]}'")
    if lang == "zh":
        import jieba
        import jieba.posseg
        jieba.setLogLevel(60)  # no "Building prefix dict" chatter
        return name, jieba.posseg
    from HanTa import HanoverTagger
    return name, HanoverTagger.HanoverTagger("morphmodel_en.pgz")


def _spacy_pipeline(models):
    """The first installed spaCy pipeline of `models`, tagger and lemmatiser only; None without spaCy or one."""
    try:
        import spacy
    except ImportError:
        return None
    for model in models:
        try:
            nlp = spacy.load(model)
        except OSError:
            continue
        nlp.select_pipes(disable=[p for p in ("parser", "ner") if p in nlp.pipe_names])
        return nlp
    return None


def _tag_en_zh(sentence, tagger, lang):
    """tag_sentence for English and Chinese: (word, lemma, universal POS) of every token."""
    name, model = _en_zh_tagger(lang, tagger)
    if name.startswith("spacy"):  # Chinese pipelines have no lemmatiser: the word is the lemma
        return tuple((t.text, (t.lemma_ or t.text).lower(), t.pos_) for t in model(sentence))
    return _tag_english(sentence, model) if lang == "en" else _tag_chinese(sentence, model)


def _tag_english(sentence, hanta):
    """HanTa's English model on the clitic-split sentence, C5 tags mapped by C5_TO_UPOS and _en_rules."""
    text = sentence.replace("\u2019", "'")
    for pattern, repl in EN_CLITICS:
        text = re.sub(pattern, repl, text, flags=re.IGNORECASE)
    words = [w.lower() if re.fullmatch(r"n't|'(?:s|re|ve|ll|d|m)", w, flags=re.IGNORECASE) else w  # N'T -> n't
             for w in re.findall(EN_TOKEN, text, flags=re.IGNORECASE)]
    if not words:
        return ()
    tagged = hanta.tag_sent(words, taglevel=1)  # [(word, lemma, C5 tag)]
    lemmas = [lemma.lower() for _, lemma, _ in tagged]
    upos = _en_rules([t for _, _, t in tagged], lemmas)
    lemmas = [EN_PRONOUN_LEMMAS.get(w.lower(), m) if u == "PRON" else m for w, m, u in zip(words, lemmas, upos)]
    return tuple(zip(words, lemmas, upos))


def _en_rules(tags, lemmas):
    """Universal POS of C5 tags in context (C5 does not tell auxiliary do/have from lexical, nor determiners from
    pronouns): do before a base-form verb and have before a participle or "to" + verb ("have to", a modal) are AUX,
    else VERB (adverbs, not and pronouns between are skipped: "do you want", "have n't seen"); "going" of
    "be going to" + verb is AUX (the future, like German werden); DT0/DTQ before a noun, adjective, number or
    determiner is DET, else PRON ("like this", "what you want")."""
    upos = [C5_TO_UPOS.get(t, "X") for t in tags]
    for i, (t, u) in enumerate(zip(tags, upos)):
        j = next((k for k in range(i + 1, len(tags)) if tags[k] not in ("XX0", "AV0", "PNP", "PNI", "PNX", "EX0")),
                 len(tags))
        nxt, after = (tags + ["", ""])[j], (tags + ["", ""])[j + 1]
        if t.startswith("VD"):
            upos[i] = "AUX" if nxt in ("VVI", "VVB", "VBI", "VBB", "VHI", "VHB", "VDI", "VDB") else "VERB"
        elif t.startswith("VH"):
            perfect = nxt[:1] == "V" and nxt[2:] in ("N", "D")
            upos[i] = "AUX" if perfect or (nxt == "TO0" and after[:1] == "V") else "VERB"
        elif u == "DET?":
            determined = (tags + [""])[i + 1][:2] in ("NN", "NP", "AJ", "CR", "OR", "AT", "DP", "DT")
            upos[i] = "DET" if determined else "PRON"
        elif lemmas[i] == "go" and t == "VVG" and i and tags[i - 1].startswith("VB") and nxt == "TO0" \
                and after[:1] == "V":
            upos[i] = "AUX"
    return upos


def _tag_chinese(sentence, posseg):
    """jieba's dictionary words (the lemmas; no HMM guesses of unknown words) with JIEBA_TO_UPOS and the rules of
    ZH_COPULA, ZH_NEGATION, ZH_ASPECT, ZH_MODALS, ZH_NEGATING_VERBS and ZH_DEMONSTRATIVES."""
    pairs = []
    for w in posseg.cut(sentence, HMM=False):
        for word, flag in _recut(w.word, w.flag, posseg):
            if not word.strip():
                continue
            if w.flag == "eng" or word.isascii() and word.isalnum():  # jieba's 'eng': digits and Latin letters
                flag = "m" if word.isdigit() else "nz"  # 10 a numeral, WiFi a foreign name
            if flag.startswith("q") and pairs and pairs[-1][1].startswith("m"):
                pairs[-1] = (pairs[-1][0] + word, "m")  # numeral + classifier: one numeral word (三个, 两斤)
            elif len(word) == 1 and pairs and pairs[-1][0] in ("这", "那", "哪") and flag[:1] in ("q", "n"):
                pairs[-1] = (pairs[-1][0] + word, "r")  # demonstrative + classifier: one word (这双, 那本)
            else:  # a classifier after no numeral or demonstrative is the noun (我在家: 家 'home')
                pairs.append((word, "n" if flag.startswith("q") else flag))
    upos = ["PROPN" if f[:2] in ("nr", "ns", "nt", "nz") else JIEBA_TO_UPOS.get(f[:1], "X") for _, f in pairs]
    for i, (word, flag) in enumerate(pairs):
        nxt = upos[i + 1] if i + 1 < len(upos) else "PUNCT"
        rest = [u for u in upos[i + 1:] if u != "ADV"]
        clause = upos[i + 1:(upos + ["PUNCT"]).index("PUNCT", i + 1)]
        if word in ZH_COPULA or word in ZH_ASPECT or (word in ZH_MODALS and "VERB" in clause) \
                or (word in ZH_NEGATING_VERBS and rest[:1] == ["VERB"]):
            upos[i] = "AUX"
        elif word in ZH_NEGATION:
            upos[i] = "PART"
        elif (word[0] in ZH_DEMONSTRATIVES and flag[:1] in ("r", "m") or word in ("每", "各", "某")) \
                and nxt in ("NOUN", "PROPN", "NUM", "X"):
            upos[i] = "DET"
        elif flag == "f" and len(word) > 1:
            upos[i] = "NOUN"  # two-character localisers are nouns (外面, 里面)
        elif word in ("上", "下") and nxt in ("NOUN", "PROPN"):
            upos[i] = "VERB"  # a localiser has no object after it: 上小学, 下大雨 are the verbs
    return tuple((w, w.lower(), u) for (w, _), u in zip(pairs, upos))


def _recut(word, flag, posseg):
    """[(word, flag)]: a jieba entry, or its dictionary words where it is a phrase (ZH_PHRASE_HEADS/TAILS, l, i)."""
    tags = posseg.dt.word_tag_tab
    if flag == "l" or (flag == "i" and len(word) != 4):
        dt = posseg.dt.tokenizer
        dag = dt.get_DAG(word)
        dag[0] = [j for j in dag[0] if j < len(word) - 1] or [0]  # every split but the whole entry
        route = {}
        dt.calc(word, dag, route)
        pieces, i = [], 0
        while i < len(word):
            pieces.append(word[i:route[i][1] + 1])
            i = route[i][1] + 1
        if len(pieces[-1]) > 1 or not tags.get(pieces[-1], "x").startswith("n"):  # 打火机, 跑步机: compound nouns
            return [(w, tags.get(w, "x")) for w in pieces]
    if len(word) > 1 and word[0] in ZH_PRONOUN_HEADS and word[1:] != "们" and word[1:] in tags:
        return [(word[0], "r"), (word[1:], tags[word[1:]])]
    if len(word) > 1 and flag[:1] in ("n", "v", "l", "i", "s"):  # not adverbs, adjectives, time words: 不断, 最近
        head, tail = word[:1], word[1:]
        if tags.get(tail, "x")[:1] in ZH_PHRASE_HEADS.get(head, ()):  # 太冷, 不下雨; not 太阳, 不丹, 不动产
            return [(head, tags[head]), (tail, tags[tail])]
        head, tail = word[:-1], word[-1:]
        if tail in ZH_PHRASE_TAILS and tags.get(head, "x")[:1] in ("n", "v", "a", "t"):  # 回家吧
            return [(head, tags[head]), (tail, tags[tail])]
    return [(word, flag)]


# -----------------------------------------------------------------------------
# measuring the tagger (DESIGN.md "Pseudo-glosses")

# The weather nouns checked by --weather-check and the surface forms counted as their occurrences: the whole
# word in one of its singular or plural case forms (compounds such as regenschauer are not counted). "abends"
# (an adverb) and "blitzen", "donnern" (also the verbs' infinitives) are left out.
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


def gold_scores(pairs, tagger=None, lang="de"):
    """Micro-averaged precision, recall, F1 of extract() against gold pseudo-glosses, multiset match per sentence."""
    hit = predicted = expected = 0
    for sentence, gold in pairs:
        got = extract(sentence, tagger, lang)
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


def build_pseudoglosses(root, splits=None, fasttext_path=None, cache_dir=None, dim=300, seed=0, lang="de") -> dict:
    """Paper §3.2: the vocabulary of `splits` (default: every split present, "all pseudo-glosses in the dataset" as
    the paper and the authors' code have it), prototypes P [U+1, dim] (last row non-sign), labels of every video;
    translations in language `lang` (de, en, zh); cached in `cache_dir` when given (pretrain.py: <out>/cache;
    never the data root, which may be read-only), and rebuilt when the cache is stale or damaged (DESIGN.md
    "Pseudo-glosses")."""
    if lang not in LANGS:
        raise ValueError(f"language '{lang}': expected one of {', '.join(LANGS)}")
    root = Path(root)
    present = data.present_splits(root)
    splits = tuple(splits or present)
    rows = {s: read_translations(root, s) for s in dict.fromkeys(list(splits) + present)}
    digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()
    key = {"splits": list(splits), "fasttext": str(Path(fasttext_path).resolve()) if fasttext_path else None,
           "dim": dim, "seed": seed, "tagger": tagger_name(lang), "annotations": digest}
    cache = Path(cache_dir) / f"pseudoglosses-{'-'.join(splits)}.pt" if cache_dir else None
    pg = _read_cache(cache, key) if cache else None
    if pg is not None:
        return pg

    vocab = sorted({g for s in splits for _, sentence in rows[s] for g in extract(sentence, lang=lang)})
    index = {g: i for i, g in enumerate(vocab)}
    labels = {name: [index[g] for g in extract(sentence, lang=lang) if g in index]
              for s in rows for name, sentence in rows[s]}
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


def report(root, gold=None, weather_check=False, taggers=None, lang="de"):
    """CLI --gold / --weather-check: P/R/F1 of each tagger on the gold file; weather-noun shares and vocabulary on
    the real text (German); English and Chinese have one tagger each."""
    if lang != "de":
        taggers = [None]
        names = [tagger_name(lang) + " (default)"]
    else:
        default = _pos_tagger()[0]
        taggers = taggers or ([None] + [t for t in HANTA_MODES if t != default] if gold else ["hanta-cased", None])
        names = [_pos_tagger(t)[0] + (" (default)" if t is None else "") for t in taggers]
    if gold:
        pairs = read_gold(gold)
        print(f"{gold} ({lang}): {len(pairs)} sentences, {sum(len(g) for _, g in pairs)} pseudo-glosses")
        print(f"{'tagger':32s} {'P':>6s} {'R':>6s} {'F1':>6s}")
        for t, name in zip(taggers, names):
            print(f"{name:32s} " + " ".join(f"{x:6.3f}" for x in gold_scores(pairs, t, lang)))
    if weather_check:
        present = data.present_splits(root)
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
                   help="German taggers to measure (default: all with --gold, hanta-cased and the default otherwise)")
    p.add_argument("--lang", default="de", choices=LANGS, help="the translations' language (default de)")
    args = p.parse_args()
    if args.weather_check and args.lang != "de":
        p.error("--weather-check measures German weather nouns: it takes --lang de")
    if args.gold or args.weather_check:
        taggers = [None if t == "default" else t for t in args.taggers] if args.taggers else None
        root = data.resolve_root(args.data) if args.weather_check else None
        report(root, args.gold, args.weather_check, taggers, args.lang)
        return
    root, lang = data.resolve_root(args.data), args.lang
    pg = build_pseudoglosses(root, args.vocab_splits, args.fasttext, args.cache_dir, lang=lang)
    present = data.present_splits(root)
    args.vocab_splits = args.vocab_splits or present
    print(f"tagger: {tagger_name(lang)}")
    rows = {s: read_translations(root, s) for s in present}
    for chosen in [[s] for s in present] + [present]:
        n = len({g for s in chosen for _, t in rows[s] for g in extract(t, lang=lang)})
        print(f"pseudo-gloss vocabulary of {'+'.join(chosen)}: {n}")
    print(f"cached vocabulary ({'+'.join(args.vocab_splits)}): {len(pg['vocab'])}, "
          f"prototypes {tuple(pg['prototypes'].shape)}")
    for _, sentence in rows[args.vocab_splits[0]][:args.examples]:
        print(f"  {sentence}\n    -> {' '.join(extract(sentence, lang=lang))}")


if __name__ == "__main__":
    main()
