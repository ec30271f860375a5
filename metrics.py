"""The metrics of §4.1 as sign language translation papers report them: corpus BLEU-1..4 (sacrebleu) and ROUGE-L
(sentence-level LCS F-score, written out here), per language as each dataset's papers score (PHOENIX14T de and
How2Sign en: 13a on the cased text; CSL-Daily zh: characters), and the conventions evaluate.py prints side by side
(raw text, " ." appended, the authors' scoring). evaluate.py prints them; finetune.py keeps its weights by them.
"""
import sacrebleu

import tokenizer

# How each dataset's papers score translations: PHOENIX14T (de) and How2Sign (en) with sacrebleu's
# default 13a tokenisation on the cased text and ROUGE-L over whitespace words; CSL-Daily (zh) at character
# level, sacrebleu's "zh" tokenisation (every CJK character a token) and ROUGE-L over characters.


def _check_lang(lang: str):
    """A clear error for a language the scoring does not know."""
    if lang not in tokenizer.LANG_CODES:
        raise ValueError(f"language '{lang}': expected one of {', '.join(tokenizer.LANG_CODES)}")


def scoring_note(lang: str = "de") -> str:
    """One line that says how `scores(..., lang)` scores, for the printed table."""
    _check_lang(lang)
    if lang == "zh":
        return ("scoring (zh): sacrebleu BLEU-1..4, tokenize='zh' (one token per Chinese character), cased; ROUGE-L "
                "(beta 1.2) over characters, whitespace ignored; against the raw reference text")
    return (f"scoring ({lang}): sacrebleu BLEU-1..4, tokenize='13a', cased; ROUGE-L (beta 1.2) over whitespace "
            "words; against the raw reference text")


def bleu(hypotheses, references, lang: str = "de") -> dict:
    """Corpus BLEU-1..4 (sacrebleu; BLEU-n = brevity penalty x geometric mean of the 1..n-gram precisions);
    lang 'zh' tokenises by character (sacrebleu's 'zh'), 'de' and 'en' with 13a on the cased text."""
    _check_lang(lang)
    tokenize = "zh" if lang == "zh" else "13a"
    return {f"bleu{n}": sacrebleu.BLEU(max_ngram_order=n, tokenize=tokenize).corpus_score(
        hypotheses, [references]).score for n in range(1, 5)}


def signatures(hypotheses, references, lang: str = "de") -> dict:
    """How `scores(..., lang)` scores, by metric, as the model card's model-index names it: sacrebleu's signature
    of the BLEU (which it gives only after scoring a corpus) and ROUGE-L's units."""
    metric = sacrebleu.BLEU(tokenize="zh" if lang == "zh" else "13a")
    metric.corpus_score(hypotheses, [references])
    units = "characters, whitespace ignored" if lang == "zh" else "whitespace words"
    return {"bleu": str(metric.get_signature()),
            "rouge": f"ROUGE-L F-score, beta 1.2, per sentence, averaged, x100, over {units}"}


def lcs(a: list, b: list) -> int:
    """Length of the longest common subsequence of two token lists (dynamic programming, one row at a time)."""
    row = [0] * (len(b) + 1)
    for x in a:
        prev_diag, row[0] = 0, 0
        for j, y in enumerate(b, 1):
            prev_diag, row[j] = row[j], prev_diag + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def rouge_tokens(text: str, lang: str = "de") -> list:
    """ROUGE-L's units: whitespace words (de, en), or every non-space character (zh; rouge_score's tokenizer
    would drop Chinese characters altogether, so CSL-Daily's character-level ROUGE-L is written out here)."""
    return [c for c in text if not c.isspace()] if lang == "zh" else text.split()


def rouge_l(hypotheses, references, lang: str = "de", beta: float = 1.2) -> float:
    """ROUGE-L as SLT papers report it: sentence-level LCS F-score with beta 1.2, averaged, x100; over characters
    for lang 'zh'."""
    _check_lang(lang)
    total = 0.0
    for hyp, ref in zip(hypotheses, references, strict=True):
        h, r = rouge_tokens(hyp, lang), rouge_tokens(ref, lang)
        n = lcs(h, r)
        if n:
            p, rec = n / len(h), n / len(r)
            total += (1 + beta ** 2) * p * rec / (rec + beta ** 2 * p)
    return 100 * total / max(len(references), 1)


def scores(hypotheses, references, lang: str = "de") -> dict:
    """BLEU-1..4 and ROUGE-L of one corpus, scored as `lang`'s dataset is (scoring_note)."""
    return {**bleu(hypotheses, references, lang), "rouge": rouge_l(hypotheses, references, lang)}


def authors_references(references, tok, max_tokens: int = None) -> list[str]:
    """The references as the authors' code scores against them: each sentence encoded with the run's (trimmed)
    tokenizer, cut as in training, and decoded with special tokens skipped (`models/Finetune_Model.py` L111 @73cc504,
    L180, through `dataset/slt_dataset.py` L133-134 @73cc504), so characters the kept pieces cannot spell, which become
    <unk>, vanish."""
    max_tokens = max_tokens or tokenizer.MAX_TEXT_TOKENS
    return [tok.decode(tok.encode(r)[:max_tokens - 2]) for r in references]  # room for `</s> de_DE`


def authors_scores(hypotheses, references, tok) -> dict:
    """Scores as the authors' code computes them (`models/Finetune_Model.py` L133-135, L181-182, L198-199 @73cc504):
    " ." appended to every hypothesis and to every reference decoded through the tokenizer (authors_references)."""
    return scores([h + " ." for h in hypotheses], [r + " ." for r in authors_references(references, tok)])


def dev_bleu(hypotheses, references, tok, scoring: str = "raw", lang: str = "de") -> dict:
    """BLEU-1..4 under one of evaluate.py's conventions, for finetune.py's choice of the kept weights: "raw" (the
    corpus text), "period" (" ." appended to both sides) or "authors" (authors_scores)."""
    if scoring not in ("raw", "period", "authors"):
        raise ValueError(f"scoring {scoring!r}: expected raw, period or authors")
    if scoring == "authors":
        references = authors_references(references, tok)
    if scoring != "raw":
        hypotheses, references = [h + " ." for h in hypotheses], [r + " ." for r in references]
    return bleu(hypotheses, references, lang)
