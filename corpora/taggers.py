"""English and Chinese pseudo-glosses (DESIGN.md "Pseudo-glosses in English and Chinese"): the paper's rule
(pseudogloss.KEEP_POS) needs universal POS tags and lemmas. spaCy where a pipeline of the language is installed;
otherwise HanTa's English model (BNC C5 tags) and jieba's POS tagger, mapped onto the same classes."""
import functools
import re

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
def tagger(lang):
    """The tagger of `lang` (en, zh), loaded once: spaCy if one of its pipelines is installed, else HanTa's English
    model or jieba's POS tagger. -> (name, tagger)"""
    if lang not in SPACY_MODELS_EN_ZH:
        raise ValueError(f"language '{lang}': expected one of {', '.join(SPACY_MODELS_EN_ZH)}")
    nlp = spacy_pipeline(SPACY_MODELS_EN_ZH[lang])
    if nlp is not None:
        return "spacy:" + nlp.meta["lang"] + "_" + nlp.meta["name"], nlp
    if lang == "zh":
        import jieba
        import jieba.posseg
        jieba.setLogLevel(60)  # no "Building prefix dict" chatter
        return DEFAULT_TAGGERS[lang], jieba.posseg
    from HanTa import HanoverTagger
    return DEFAULT_TAGGERS[lang], HanoverTagger.HanoverTagger("morphmodel_en.pgz")


def spacy_pipeline(models):
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


def tag(sentence, lang):
    """pseudogloss.tag_sentence for English and Chinese: (word, lemma, universal POS) of every token."""
    name, model = tagger(lang)
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

