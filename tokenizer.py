"""The text side: mBART-cc25's tokenizer trimmed to the corpus (paper preset), or a small sentencepiece model
trained on the training translations (tiny preset), behind one interface (DESIGN.md "Tokenizer").

Vocabulary trimming has two halves: here, the tokens kept (mBART's special tokens, de_DE and every token the
training translations use) and the map from old to new ids (`build_mbart`, `Tokenizer`); then the same rows
sliced out of mBART's embedding and output layer (`trim_vocabulary`, which model.load_mbart calls). New id i is
old id keep_ids[i].
"""
import hashlib
import io
import json
import tempfile
from pathlib import Path

import torch
import torch.nn as nn

# mBART-cc25's language codes of the three datasets' languages (PHOENIX14T, How2Sign, CSL-Daily); the decoder
# starts from the target language's code, and the text encoder's source ends with it.
LANG_CODES = {"de": "de_DE", "en": "en_XX", "zh": "zh_CN"}
# the authors' max_words (`dataset/slt_dataset.py` L25, L134 @73cc504): `x </s> de_DE` is cut to at most 128 tokens
MAX_TEXT_TOKENS = 128


def lang_code(lang: str) -> str:
    """mBART's code of a language ('zh' -> 'zh_CN'); a clear error for one the project does not know."""
    if lang not in LANG_CODES:
        raise ValueError(f"language '{lang}': expected one of {', '.join(LANG_CODES)}")
    return LANG_CODES[lang]


class Tokenizer:
    """Trimmed mBART-cc25 (paper preset) or a small sentencepiece model (tiny preset), one interface."""

    def __init__(self, kind, model, keep_ids=None, lang_code="de_DE"):
        self.kind, self.model, self.lang_code = kind, model, lang_code
        if kind == "sentencepiece":
            self.keep_ids = None
            self.vocab_size = model.get_piece_size()
            self.bos_id, self.pad_id = model.bos_id(), model.pad_id()
            self.eos_id, self.unk_id = model.eos_id(), model.unk_id()
            self.lang_id = model.piece_to_id(lang_code)
            if self.lang_id == self.unk_id:
                raise ValueError(f"the sentencepiece model has no piece '{lang_code}' (built for another language?)")
        else:
            self.keep_ids = torch.as_tensor(keep_ids, dtype=torch.long)
            self._new_id = {old: new for new, old in enumerate(self.keep_ids.tolist())}
            self.vocab_size = len(self.keep_ids)
            self.bos_id, self.pad_id = self._new_id[model.bos_token_id], self._new_id[model.pad_token_id]
            self.eos_id, self.unk_id = self._new_id[model.eos_token_id], self._new_id[model.unk_token_id]
            self.lang_id = self._new_id[model.convert_tokens_to_ids(lang_code)]
            self._trimmed = trimmed_unigram(model, self.keep_ids.tolist(), self.unk_id)
        self.special_ids = {self.bos_id, self.pad_id, self.eos_id, self.unk_id, self.lang_id}
        if kind == "mbart":  # mBART's other language codes and <mask>, kept as the authors' trimming keeps them
            self.special_ids |= {self._new_id[i] for i in model.all_special_ids if i in self._new_id}

    def encode(self, sentence: str) -> list[int]:
        """Content token ids of one sentence, no special tokens. mBART: segmented with the kept pieces only, as
        the authors' trimmed sentencepiece model does, so that a word unseen in training is spelt with seen
        pieces; a character no kept piece covers is <unk> (DESIGN.md "Tokenizer")."""
        if self.kind == "sentencepiece":
            return self.model.encode(sentence)
        return self._trimmed.encode(sentence, add_special_tokens=False).ids

    def decode(self, ids) -> str:
        """The sentence of a token id sequence, special tokens dropped."""
        ids = [int(i) for i in ids if int(i) not in self.special_ids]
        if self.kind == "sentencepiece":
            return self.model.decode(ids)
        return self.model.decode(self.keep_ids[ids].tolist(), skip_special_tokens=True).strip()

    def save(self, out_dir, write_file=None):
        """Writes the tokenizer to out_dir (tokenizer.json + spm.model or mbart-tokenizer/); write_file(path,
        write) writes each (the scripts: corpora.files.atomic_write, which never writes through a link; default:
        write(path) in place)."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        write_file = write_file or (lambda path, write: write(path))
        meta = {"kind": self.kind, "lang_code": self.lang_code}
        if self.kind == "sentencepiece":
            write_file(out_dir / "spm.model", lambda tmp: tmp.write_bytes(self.model.serialized_model_proto()))
        else:
            write_file(out_dir / "mbart-tokenizer", lambda tmp: self.model.save_pretrained(str(tmp)))
            meta["keep_ids"] = self.keep_ids.tolist()
        write_file(out_dir / "tokenizer.json", lambda tmp: tmp.write_text(json.dumps(meta)))

    def pieces(self) -> list[str]:
        """The piece of every id, in id order."""
        if self.kind == "sentencepiece":
            return [self.model.id_to_piece(i) for i in range(self.vocab_size)]
        return self.model.convert_ids_to_tokens(self.keep_ids.tolist())

    def fingerprint(self) -> str:
        """sha256 of what fixes the ids: kind, every id's piece and (sentencepiece) score, and the language code
        the decoder starts from. Two tokenizers with the same fingerprint encode and decode alike (DESIGN.md
        "Runs and checkpoints")."""
        scores = [self.model.get_score(i) for i in range(self.vocab_size)] if self.kind == "sentencepiece" else None
        fields = [self.kind, self.pieces(), scores, self.lang_code]
        return hashlib.sha256(json.dumps(fields).encode()).hexdigest()

    def state(self) -> dict:
        """What a checkpoint keeps to use the tokenizer alone: kind, language code, fingerprint and the files save()
        writes (spm.model; or mBART's tokenizer files and keep_ids), as plain values that weights_only loading
        accepts."""
        with tempfile.TemporaryDirectory() as tmp:
            self.save(tmp)
            files = {str(p.relative_to(tmp)): p.read_bytes() for p in sorted(Path(tmp).rglob("*")) if p.is_file()}
        return {"kind": self.kind, "lang_code": self.lang_code, "fingerprint": self.fingerprint(), "files": files}

    @classmethod
    def from_state(cls, state: dict) -> "Tokenizer":
        """The tokenizer a checkpoint holds (state()), checked before it is used (check_state): file names,
        kind, and the fingerprint recomputed from the stored bytes. A checkpoint is data, never a path: its
        files are written, under their checked names, into a fresh temporary folder that load() reads;
        ValueError says what is wrong."""
        files = check_state(state)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                for name, content in files.items():
                    (Path(tmp) / name).parent.mkdir(exist_ok=True)
                    (Path(tmp) / name).write_bytes(content)
                tok = cls.load(tmp)
        except Exception as e:  # whatever the stored bytes make the tokenizer libraries raise
            raise ValueError(f"its tokenizer's files cannot be read as a {state['kind']} tokenizer "
                             f"({type(e).__name__}: {str(e)[:200]})") from None
        if tok.fingerprint() != state["fingerprint"]:
            raise ValueError("its tokenizer's files do not give the fingerprint it records (damaged or edited "
                             "checkpoint)")
        return tok

    @classmethod
    def load(cls, out_dir):
        """Reads a tokenizer that save() wrote to out_dir."""
        out_dir = Path(out_dir)
        meta = json.loads((out_dir / "tokenizer.json").read_text())
        code = meta["lang_code"]
        if meta["kind"] == "sentencepiece":
            import sentencepiece as spm
            return cls("sentencepiece", spm.SentencePieceProcessor(model_file=str(out_dir / "spm.model")),
                       lang_code=code)
        from transformers import AutoTokenizer
        hf = AutoTokenizer.from_pretrained(str(out_dir / "mbart-tokenizer"), src_lang=code, tgt_lang=code)
        return cls("mbart", hf, meta["keep_ids"], lang_code=code)


def check_state(state) -> dict:
    """A checkpoint's tokenizer (Tokenizer.state()) checked as data before anything is written: kind, fingerprint
    and files of the right types; every file name one that save() writes, i.e. tokenizer.json and spm.model, or
    tokenizer.json and mbart-tokenizer/<plain name> (no other separator, no '.' or '..', nothing absolute).
    Returns its files; a ValueError says what is wrong ("its tokenizer ...")."""
    if not isinstance(state, dict) or state.get("kind") not in ("sentencepiece", "mbart") or \
            not isinstance(state.get("fingerprint"), str) or not isinstance(state.get("files"), dict):
        raise ValueError("its tokenizer is not a tokenizer state (kind sentencepiece or mbart, fingerprint, files)")
    kind, files = state["kind"], state["files"]
    expected = "tokenizer.json, spm.model" if kind == "sentencepiece" else "tokenizer.json, mbart-tokenizer/NAME"
    for name, content in files.items():
        parts = name.split("/") if isinstance(name, str) else [""]
        plain = all(p not in ("", ".", "..") and "\\" not in p and "\0" not in p for p in parts)
        known = name in expected.split(", ") or (kind == "mbart" and len(parts) == 2 and parts[0] == "mbart-tokenizer")
        if not (plain and known):
            raise ValueError(f"its tokenizer holds a file named {name!r}, not one of a {kind} tokenizer's files "
                             f"({expected}): names in a checkpoint are never used as paths")
        if not isinstance(content, bytes):
            raise ValueError(f"its tokenizer's file {name!r} holds {type(content).__name__}, not bytes")
    missing = [n for n in ["tokenizer.json"] + (["spm.model"] if kind == "sentencepiece" else []) if n not in files]
    if missing:
        raise ValueError(f"its tokenizer lacks {', '.join(missing)}")
    try:
        described = json.loads(files["tokenizer.json"])["kind"]
    except (ValueError, TypeError, KeyError):
        described = None
    if described != kind:
        raise ValueError(f"its tokenizer's tokenizer.json does not describe a {kind} tokenizer")
    return files


def trimmed_unigram(hf, keep_ids: list, unk_id: int):
    """mBART's unigram segmenter (its normaliser, pre-tokeniser and piece scores) over the kept pieces only, with
    new id i = old id keep_ids[i]: what hftrim's TokenizerTrimmer, which the authors trim with, makes of the
    sentencepiece model. On the training text it segments as the full model does (every piece of the best
    segmentation is kept, so it stays the best)."""
    from tokenizers import Tokenizer as Backend
    spec = json.loads(hf.backend_tokenizer.to_str())
    if spec["model"]["type"] != "Unigram":
        raise ValueError(f"the mBART tokenizer's model is {spec['model']['type']}, not the sentencepiece unigram "
                         "model of mbart-large-cc25: cannot trim it")
    scores = {piece: score for piece, score in spec["model"]["vocab"]}
    pieces = hf.convert_ids_to_tokens(keep_ids)
    spec["model"] = {"type": "Unigram", "unk_id": unk_id, "byte_fallback": False,
                     "vocab": [[p, scores.get(p, 0.0)] for p in pieces]}  # special tokens: not in the text
    spec["added_tokens"], spec["post_processor"] = [], None
    return Backend.from_str(json.dumps(spec))


def build_sentencepiece(sentences, vocab_size=1000, lang="de") -> Tokenizer:
    """Tiny preset: sentencepiece on the training translations; <s>=0 <pad>=1 </s>=2 <unk>=3, the language code
    (de_DE, en_XX, zh_CN) = 4. character_coverage=1.0 keeps every character of the training text, which
    Chinese needs (sentencepiece's default 0.9995 maps the rarest characters to <unk>). Chinese is written
    without spaces, so sentencepiece's pieces would span words (明天妈妈在 one piece, every combination of time and
    person its own token): its pieces are single characters, the unit CSL-Daily is scored in (measured on the
    synthetic Chinese corpus: DESIGN.md "Tokenizer"). Chinese text is not NFKC-normalised (normalization "identity"):
    NFKC turns the full-width punctuation of Chinese text (？，) into ASCII, so decoded hypotheses would differ from
    the raw references that character-level BLEU compares them with."""
    import sentencepiece as spm
    code = lang_code(lang)
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences), model_writer=proto, vocab_size=vocab_size, hard_vocab_limit=False,
        model_type="unigram", character_coverage=1.0, bos_id=0, pad_id=1, eos_id=2, unk_id=3,
        user_defined_symbols=[code], num_threads=1, minloglevel=2,
        normalization_rule_name="identity" if lang == "zh" else "nmt_nfkc",
        max_sentencepiece_length=1 if lang == "zh" else 16)
    return Tokenizer("sentencepiece", spm.SentencePieceProcessor(model_proto=proto.getvalue()), lang_code=code)


def build_mbart(sentences, name_or_path="facebook/mbart-large-cc25", lang="de") -> Tokenizer:
    """Paper preset: mBART-cc25's tokenizer kept to its special tokens (<s> <pad> </s> <unk>, the language code
    (de_DE, en_XX, zh_CN), the other 24 language codes, <mask>: the authors' hftrim keeps them all) and the tokens
    the training text uses (Chinese characters included: mBART's sentencepiece covers them)."""
    from transformers import AutoTokenizer  # mBART-cc25, mBART-50 and their kin
    code = lang_code(lang)
    try:
        hf = AutoTokenizer.from_pretrained(name_or_path, src_lang=code, tgt_lang=code)
    except Exception as e:
        raise OSError(f"cannot load the mBART tokenizer '{name_or_path}' ({e}); download it once or pass "
                      "--mbart PATH to a local copy of facebook/mbart-large-cc25") from e
    specials = [hf.bos_token_id, hf.pad_token_id, hf.eos_token_id, hf.unk_token_id, hf.convert_tokens_to_ids(code)]
    others = sorted(set(hf.all_special_ids) - set(specials))
    used = {i for s in sentences for i in hf(s, add_special_tokens=False)["input_ids"]} - set(specials) - set(others)
    # mBART's 0..3 stay 0..3, the language code -> 4
    return Tokenizer("mbart", hf, specials + others + sorted(used), lang_code=code)


def load_or_build_tokenizer(kind, sentences, out_dir, mbart_name="facebook/mbart-large-cc25",
                            rebuild: bool = False, lang: str = "de", write_file=None) -> Tokenizer:
    """Builds the `kind` tokenizer for language `lang` (de, en, zh) from the training sentences once, saves it in
    out_dir (through write_file: Tokenizer.save), later loads it (rebuild: build and save it again, for a run
    that starts from scratch)."""
    out_dir = Path(out_dir)
    if kind not in ("mbart", "sentencepiece"):
        raise ValueError(f"tokenizer kind '{kind}': expected 'mbart' or 'sentencepiece'")
    code = lang_code(lang)
    if (out_dir / "tokenizer.json").is_file() and not rebuild:
        tok = Tokenizer.load(out_dir)
        if tok.kind != kind:
            raise ValueError(f"{out_dir / 'tokenizer.json'} holds a '{tok.kind}' tokenizer, not '{kind}': "
                             "use another output folder")
        if tok.lang_code != code:
            raise ValueError(f"{out_dir / 'tokenizer.json'} holds a {tok.lang_code} tokenizer, not {code} "
                             f"(--lang {lang}): use another output folder")
        return tok
    sentences = list(sentences)
    tok = build_mbart(sentences, mbart_name, lang) if kind == "mbart" else build_sentencepiece(sentences, lang=lang)
    tok.save(out_dir, write_file)
    return tok


def trim_vocabulary(mbart, keep_ids: torch.Tensor):
    """The model half of trimming: keep only the rows of `keep_ids` in an MBartForConditionalGeneration's shared
    embedding, tied output layer and output bias; new token i is old token keep_ids[i]."""
    old = mbart.model.shared
    new = type(old)(len(keep_ids), old.embedding_dim, old.padding_idx, embed_scale=old.embed_scale)
    new.weight = nn.Parameter(old.weight.data[keep_ids].clone(), requires_grad=old.weight.requires_grad)
    mbart.model.set_input_embeddings(new)   # shared by encoder and decoder
    mbart.lm_head.weight = new.weight       # tied output projection
    mbart.lm_head.out_features = len(keep_ids)
    mbart.final_logits_bias = mbart.final_logits_bias[:, keep_ids].clone()
    mbart.config.vocab_size = len(keep_ids)
    return mbart
