"""The pseudo-gloss taggers measured (DESIGN.md "Pseudo-glosses"): P/R/F1 against a gold file, the weather
nouns of the real text, and the vocabulary a dataset gives.

    python -m tools.tagger_scores --data synthetic                        # vocabulary sizes and examples
    python -m tools.tagger_scores --gold tools/gold/de.tsv                # P/R/F1 (German)
    python -m tools.tagger_scores --gold tools/gold/en.tsv --lang en      # English (How2Sign), zh: CSL-Daily
    python -m tools.tagger_scores --data phoenix14t --weather-check       # weather nouns, vocabulary
"""
import argparse
from collections import Counter
from pathlib import Path

import data
import pseudogloss
from harness import pseudogloss_cache

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


def gold_scores(pairs, lang="de"):
    """Micro-averaged precision, recall, F1 of pseudogloss.extract() against gold pseudo-glosses, multiset match per
    sentence."""
    hit = predicted = expected = 0
    for sentence, gold in pairs:
        got = pseudogloss.extract(sentence, lang)
        hit += sum((Counter(got) & Counter(gold)).values())
        predicted, expected = predicted + len(got), expected + len(gold)
    p, r = hit / max(predicted, 1), hit / max(expected, 1)
    return p, r, 2 * p * r / max(p + r, 1e-12)


def weather_shares(sentences):
    """{noun: (occurrences whose pseudo-gloss is the noun, occurrences)} over WEATHER_NOUNS' forms."""
    noun_of = {form: noun for noun, forms in WEATHER_NOUNS.items() for form in forms.split()}
    kept, total = Counter(), Counter()
    for sentence in sentences:
        for word, lemma, upos in pseudogloss.tag_sentence(sentence):
            noun = noun_of.get(word.lower())
            if noun:
                total[noun] += 1
                kept[noun] += upos in pseudogloss.KEEP_POS and lemma == noun
    return {noun: (kept[noun], total[noun]) for noun in WEATHER_NOUNS}


def report(root, gold=None, weather_check=False, lang="de"):
    """CLI --gold / --weather-check: P/R/F1 of the language's tagger on a gold file; weather-noun shares and
    vocabulary on the real text (German)."""
    name = pseudogloss.tagger_name(lang)
    if gold:
        pairs = read_gold(gold)
        print(f"{gold} ({lang}): {len(pairs)} sentences, {sum(len(g) for _, g in pairs)} pseudo-glosses")
        print(f"{'tagger':32s} {'P':>6s} {'R':>6s} {'F1':>6s}")
        print(f"{name:32s} " + " ".join(f"{x:6.3f}" for x in gold_scores(pairs, lang)))
    if weather_check:
        present = data.present_splits(root)
        rows = {s: [t for _, t in pseudogloss.read_translations(root, s)] for s in present}
        train = rows.get("train", rows[present[0]])
        print(f"weather nouns in {'train' if 'train' in rows else present[0]} ({len(train)} translations): "
              "share of occurrences whose pseudo-gloss is the noun's lemma")
        shares = weather_shares(train)
        kept, total = (sum(x[i] for x in shares.values()) for i in (0, 1))
        vocab = {g for s in present for sentence in rows[s] for g in pseudogloss.extract(sentence)}
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
    p.add_argument("--gold", default=None, help="measure: P/R/F1 of the tagger on a gold file (tools/gold/de.tsv)")
    p.add_argument("--weather-check", action="store_true",
                   help="measure: weather-noun lemma shares and vocabulary of --data")
    p.add_argument("--lang", default="de", choices=data.LANGS, help="the translations' language (default de)")
    args = p.parse_args()
    if args.weather_check and args.lang != "de":
        p.error("--weather-check measures German weather nouns: it takes --lang de")
    if args.gold or args.weather_check:
        root = data.resolve_root(args.data) if args.weather_check else None
        report(root, args.gold, args.weather_check, args.lang)
        return
    root, lang = data.resolve_root(args.data), args.lang
    pg = pseudogloss_cache.pseudoglosses(root, args.vocab_splits, args.fasttext, args.cache_dir, lang=lang)
    present = data.present_splits(root)
    args.vocab_splits = args.vocab_splits or present
    print(f"tagger: {pseudogloss.tagger_name(lang)}")
    rows = {s: pseudogloss.read_translations(root, s) for s in present}
    for chosen in [[s] for s in present] + [present]:
        n = len({g for s in chosen for _, t in rows[s] for g in pseudogloss.extract(t, lang=lang)})
        print(f"pseudo-gloss vocabulary of {'+'.join(chosen)}: {n}")
    print(f"cached vocabulary ({'+'.join(args.vocab_splits)}): {len(pg.vocab)}, "
          f"prototypes {tuple(pg.prototypes.shape)}")
    for _, sentence in rows[args.vocab_splits[0]][:args.examples]:
        print(f"  {sentence}\n    -> {' '.join(pseudogloss.extract(sentence, lang=lang))}")



if __name__ == "__main__":
    main()
