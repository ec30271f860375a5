"""The weights a stage keeps, as a Hugging Face folder (docs/checkpoints.md) that can be uploaded as it is:

    model.safetensors   the trainable weights and buffers (with --standalone: every weight)
    config.json         the model config, preset, language, the bases (hub id, or a folder named by the user) with
                        the sha256 of their frozen weights, the tokenizer's fingerprint, the pseudo-gloss vocabulary
    tokenizer/          the tokenizer's own files (tokenizer.Tokenizer.save)
    training.json       what fixed the result: the result flags, the dataset's fingerprint, the epoch and metric,
                        and (fine-tuning) the sha256 of the pre-training it started from
    README.md           the model card (harness/card.py), which evaluate.py extends with its table

Written whole or not at all (files.atomic_write). Read as data: only JSON, safetensors and the tokenizer's files,
nothing unpickled; every field, every tensor's name, shape, dtype and finiteness checked before a model is built;
nothing a folder holds is opened as a path (its bases are hub ids, or folders the user passes with --dino/--mbart).
"""
import contextlib
import dataclasses
import errno
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

import model
import tokenizer
from corpora import files
from harness import card, limits, outdir, provenance

FORMAT = "hierarchical-feature-alignment-slt/1"
CONFIG, TRAINING, WEIGHTS = outdir.KEPT_FILES
CARD = "README.md"
TOKENIZER = "tokenizer"
DIGESTED = (WEIGHTS, CONFIG, TRAINING)  # with the tokenizer's files: what the lineage's sha256 covers (not the card)
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}")
MAX_JSON, MAX_TOKENIZER_FILE, MAX_HEADER = 64 << 20, 256 << 20, 64 << 20
# the largest value of an integer field (config.json "model"): widths, layers, heads, sizes; vocabularies larger
LIMITS = {"vocab_size": 262_144, "n_glosses": 262_144}
INT_LIMIT = 65_536
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}
BASE_FLAGS = {"dino": "--dino", "mbart": "--mbart"}


@dataclass
class Kept:
    """A folder read and checked: its config.json and training.json, the model config, the tokenizer, the weights."""
    path: Path
    config: dict
    training: dict
    cfg: model.Config
    tok: tokenizer.Tokenizer
    state: dict


def refuse(path, what: str):
    raise SystemExit(f"'{path}' {what}; nothing was loaded or written")


# ----------------------------------------------------------------------------------------------
# Writing

def source_of(name: str) -> dict:
    """How a folder names a base: a hub id, or only the folder's last name when it was a local folder (which is
    never recorded as a path: loading asks for it with --dino/--mbart)."""
    if name and not Path(name).exists() and HUB_ID.fullmatch(name) and ".." not in name:
        return {"hub_id": name, "folder": None}
    return {"hub_id": None, "folder": Path(name).name or None}


def save(path: Path, net, setup, about: dict, names: set, standalone: bool = False):
    """Writes the folder `path` atomically: `about` holds kind, epoch, metric (name, value), flags, the dataset
    (a key of card.DATASETS), and for pre-training the pseudo-gloss vocabulary, for fine-tuning its lineage;
    `names` the trainable parameters."""
    from safetensors.torch import save_file
    weights = trainable_state(net, names if not standalone else {n for n, _ in net.named_parameters()})
    cfg, prints = dataclasses.asdict(setup.cfg), base_fingerprints(net, names)
    bases = {b: source_of(cfg[b]) | prints[b] if setup.cfg.pretrained else {"hub_id": None, "folder": None} | prints[b]
             for b in BASE_FLAGS}
    cfg |= {b: bases[b]["hub_id"] or "" for b in BASE_FLAGS}
    config = {"format": FORMAT, "kind": about["kind"], "preset": setup.args.preset, "lang": setup.lang,
              "standalone": standalone, "model": cfg, "bases": bases,
              "tokenizer": {"kind": setup.tok.kind, "lang_code": setup.tok.lang_code,
                            "fingerprint": setup.tok.fingerprint()}}
    if about["kind"] == "pretrain":
        config["pseudoglosses"] = about["vocab"]
    training = {k: about[k] for k in ("kind", "epoch", "metric", "flags")} | \
        ({"pretrained": about["pretrained"]} if about["kind"] == "finetune" else {}) | \
        {"software": provenance.software()}

    def write(tmp: Path):
        tmp.mkdir()
        save_file({k: v.contiguous() for k, v in weights.items()}, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / WEIGHTS).chmod(0o644)  # safetensors writes 0600: a folder to share reads as the others do
        (tmp / CONFIG).write_text(json.dumps(config, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / TRAINING).write_text(json.dumps(training, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        setup.tok.save(tmp / TOKENIZER)
        (tmp / CARD).write_text(card.model_card(config, training, about.get("dataset")), encoding="utf-8")
    from safetensors import SafetensorError
    try:
        files.atomic_write(path, write)
    except (OSError, SafetensorError) as e:  # safetensors reports a full disk as SafetensorError, no errno
        full = " (the disk is full)" if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) \
            or "No space left on device" in str(e) else ""
        raise SystemExit(f"could not write '{path}'{full}: {type(e).__name__}: {e}; what was there before is "
                         "unchanged") from None


def trainable_state(net, names: set, cpu: bool = True) -> dict:
    """The parameters named in `names` (each tied weight once, by its first name) and the buffers, on the CPU."""
    names = names | {n for n, _ in net.named_buffers()}
    return {k: v.detach().cpu() if cpu else v for k, v in net.state_dict().items() if k in names}


def base_fingerprints(net, names: set) -> dict:
    """sha256 of the frozen weights (the parameters not in `names`) by base: DINOv2's (sign.visual.dino.*) and
    mBART's (everything else frozen), and of mBART's encoder alone, named alike in the pre-training model
    (llm_encoder.*) and the translation model (mbart.model.encoder.*), which fine-tuning takes from pre-training."""
    trained = {id(p) for n, p in net.named_parameters() if n in names}
    groups = {"dino": [], "mbart": [], "encoder": []}
    for name, p in net.named_parameters(remove_duplicate=False):
        if id(p) in trained:
            continue
        if name.startswith("sign.visual.dino."):
            groups["dino"].append((name, p))
        else:
            groups["mbart"].append((name, p))
            for prefix in ("llm_encoder.", "mbart.model.encoder."):
                if name.startswith(prefix):
                    groups["encoder"].append((name.removeprefix(prefix), p))
    digests = {}

    def digest(items):
        h = hashlib.sha256()
        for name, p in sorted(items, key=lambda x: x[0]):
            if id(p) not in digests:
                digests[id(p)] = hashlib.sha256(p.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
            h.update(f"{name} {p.dtype} {list(p.shape)} {digests[id(p)].hexdigest()}\n".encode())
        return h.hexdigest()
    return {"dino": {"sha256": digest(groups["dino"])},
            "mbart": {"sha256": digest(groups["mbart"]), "encoder_sha256": digest(groups["encoder"])}}


def digest(folder: Path) -> str:
    """sha256 of a folder's weights, config, training record and tokenizer files (not the card, which evaluate.py
    extends): what a fine-tuned folder records of the pre-training it started from."""
    folder = Path(folder)
    parts = [folder / n for n in DIGESTED] + sorted((folder / TOKENIZER).rglob("*"))
    h = hashlib.sha256()
    for p in parts:
        if p.is_file():
            with open(p, "rb") as f:
                line = f"{p.relative_to(folder).as_posix()} {hashlib.file_digest(f, 'sha256').hexdigest()}\n"
                h.update(line.encode())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# Finding a folder: a path, or a hub id

def resolve(spec, flag: str) -> Path:
    """A folder given to `flag`: a local folder, or a hub id (user/name) fetched with huggingface_hub."""
    path, where = Path(spec), "(kept weights are the folder <out>/pretrain or <out>/finetune, or a hub id user/name)"
    if not str(spec).strip():  # Path("") is the current folder
        raise SystemExit(f"{flag}: checkpoint not found: '{spec}' {where}")
    if path.is_dir():
        return path
    if path.is_file():
        raise SystemExit(f"{flag} '{spec}' is a file: kept weights are a folder (model.safetensors, config.json, "
                         "tokenizer/, ...) that pretrain.py and finetune.py write as <out>/pretrain and <out>/finetune")
    if HUB_ID.fullmatch(str(spec)) and ".." not in str(spec):
        try:
            from huggingface_hub import snapshot_download
            return Path(snapshot_download(str(spec), allow_patterns=[*DIGESTED, CARD, f"{TOKENIZER}/*",
                                                                     f"{TOKENIZER}/*/*"]))
        except Exception as e:  # offline, unknown repository, no access: whatever huggingface_hub raises
            raise SystemExit(f"{flag} '{spec}': no such folder here, and the hub id could not be fetched "
                             f"({type(e).__name__}: {str(e)[:200]})") from None
    raise SystemExit(f"{flag}: checkpoint not found: '{spec}' {where}")


# ----------------------------------------------------------------------------------------------
# Reading: every check before a model is built

def read(spec, kind: str, flag: str = "--checkpoint") -> Kept:
    """The folder `spec` (a path or hub id) of a `kind` stage ('pretrain' or 'finetune'), checked: config.json and
    training.json field by field, the weights' header against the config's shapes, the tokenizer against its
    fingerprint, every weight finite. Anything else is refused, naming the file and the field."""
    path = resolve(spec, flag)
    for name in (CONFIG, TRAINING, WEIGHTS, f"{TOKENIZER}/tokenizer.json"):
        regular_file(path / name, path)
    config, training = read_json(path / CONFIG), read_json(path / TRAINING)
    check_config(config, path / CONFIG, kind)
    check_training(training, path / TRAINING, kind)
    cfg = model.Config(**config["model"])
    tok = read_tokenizer(path, config)
    if tok.vocab_size != cfg.vocab_size:
        refuse(path / CONFIG, f"field model.vocab_size: {cfg.vocab_size}, but its tokenizer has {tok.vocab_size} ids")
    expected = expected_tensors(cfg, kind, config["standalone"], path / CONFIG)
    check_header(path / WEIGHTS, expected)
    from safetensors.torch import load_file
    state = load_file(str(path / WEIGHTS))
    for name, t in state.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            refuse(path / WEIGHTS, f"tensor '{name}' holds non-finite values (NaN or inf): the weights are broken")
    return Kept(path, config, training, cfg, tok, state)


def regular_file(p: Path, folder: Path):
    if p.is_symlink() or not p.is_file():
        what = "is a link" if p.is_symlink() else "is missing"
        refuse(p, f"{what}: a kept-weights folder holds {CONFIG}, {TRAINING}, {WEIGHTS} and {TOKENIZER}/ as plain "
                  f"files ('{folder}' is not such a folder, or is damaged)")


def read_json(p: Path) -> dict:
    if p.stat().st_size > MAX_JSON:
        refuse(p, f"is {p.stat().st_size:,} bytes, more than any {p.name} this project writes")
    try:
        value = limits.loads(p.read_text(encoding="utf-8"), p.name)
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError among them
        refuse(p, f"is not JSON ({type(e).__name__}: {str(e)[:120]})")
    if not isinstance(value, dict):
        refuse(p, f"holds a JSON {type(value).__name__}, not an object")
    return value


def check_keys(value: dict, p: Path, field: str, required: dict, optional: dict = None):
    """The keys of `value` (config.json's field `field`) are those of `required` (key -> type) and maybe
    `optional`; each value of its type."""
    known = required | (optional or {})
    unknown, missing = sorted(set(value) - set(known)), sorted(set(required) - set(value))
    where = f"field {field}." if field else "field "
    if unknown:
        refuse(p, f"has unknown {where}{unknown[0]} (not written by this version of the project)")
    if missing:
        refuse(p, f"lacks {where}{missing[0]}")
    for k, v in value.items():
        types = known[k] if isinstance(known[k], tuple) else (known[k],)
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            refuse(p, f"{where}{k} is {type(v).__name__} {repr(v)[:40]}, expected "
                      f"{' or '.join('null' if t is type(None) else t.__name__ for t in types)}")


SHA = re.compile(r"[0-9a-f]{64}")


def check_config(config: dict, p: Path, kind: str):
    top = {"format": str, "kind": str, "preset": str, "lang": str, "standalone": bool, "model": dict, "bases": dict,
           "tokenizer": dict}
    if config.get("format") != FORMAT:
        refuse(p, f"field format is {config.get('format')!r}: not a folder of this project ({FORMAT})")
    if config.get("kind") != kind:
        refuse(p, f"field kind is {config.get('kind')!r}: this needs the {kind} folder (<out>/{kind})")
    check_keys(config, p, "", top | ({"pseudoglosses": list} if kind == "pretrain" else {}))
    if config["lang"] not in tokenizer.LANG_CODES or config["preset"] not in model.PRESETS:
        refuse(p, f"field lang {config['lang']!r} or preset {config['preset']!r} is not one this project knows")
    check_model_fields(config["model"], p)
    for base, flag in BASE_FLAGS.items():
        check_keys(config["bases"], p, "bases", {"dino": dict, "mbart": dict})
        extra = {"encoder_sha256": str} if base == "mbart" else {}
        entry = config["bases"][base]
        check_keys(entry, p, f"bases.{base}", {"hub_id": (str, type(None)), "folder": (str, type(None)),
                                                "sha256": str} | extra)
        if not all(SHA.fullmatch(entry[k]) for k in ("sha256", *extra)):
            refuse(p, f"field bases.{base}.sha256 is not a sha256")
        if entry["hub_id"] not in (None, config["model"][base]):
            refuse(p, f"field bases.{base}.hub_id {entry['hub_id']!r} is not model.{base} {config['model'][base]!r}")
    check_keys(config["tokenizer"], p, "tokenizer", {"kind": str, "lang_code": str, "fingerprint": str})
    if config["tokenizer"]["lang_code"] != tokenizer.LANG_CODES[config["lang"]]:
        refuse(p, f"field tokenizer.lang_code {config['tokenizer']['lang_code']!r} is not that of lang "
                  f"{config['lang']!r}")
    vocab = config.get("pseudoglosses")
    if vocab is not None and (len(vocab) != config["model"]["n_glosses"] or not all(isinstance(g, str) for g in vocab)):
        refuse(p, f"field pseudoglosses: {len(vocab)} entries, not the model.n_glosses "
                  f"{config['model']['n_glosses']} pseudo-glosses (strings)")


def check_model_fields(fields: dict, p: Path):
    """config.json's model config: the keys of model.Config, each of the type of the paper preset's value, numbers
    in range (an integer above LIMITS / INT_LIMIT is refused before anything is allocated), the bases' names
    hub ids or empty, never paths."""
    reference = dataclasses.asdict(model.PRESETS["paper"])
    check_keys(fields, p, "model", {k: type(v) if not isinstance(v, float) else (int, float)
                                    for k, v in reference.items()})
    for arch in ("dino_arch", "mbart_arch"):
        check_keys(fields[arch], p, f"model.{arch}", {}, {k: type(v) if not isinstance(v, float) else (int, float)
                                                           for k, v in reference[arch].items()})
    numbers = [(k, v) for k, v in fields.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    numbers += [(f"{a}.{k}", v) for a in ("dino_arch", "mbart_arch") for k, v in fields[a].items()
                if not isinstance(v, bool)]
    for k, v in numbers:
        top = LIMITS.get(k, INT_LIMIT) if isinstance(v, int) else (1.0 if "drop" in k else 1e6)
        if not (math.isfinite(v) and 0 <= v <= top) or (isinstance(v, float) and "drop" in k and v >= 1):
            refuse(p, f"field model.{k} is {v}: out of range (0 to {top:,}{', exclusive' if 'drop' in k else ''})")
    why = limits.problem(fields, reference)  # widths positive and dividing, layers and weights bounded
    if why:
        refuse(p, why)
    for base, flag in BASE_FLAGS.items():
        name = fields[base]
        if name and not (HUB_ID.fullmatch(name) and ".." not in name):
            refuse(p, f"field model.{base} is {name!r}, not a hub id (user/name): a folder's config never names a "
                      f"path to open; pass the base's folder yourself with {flag} DIR")


def check_training(training: dict, p: Path, kind: str):
    lineage = {"pretrained": (dict, type(None))} if kind == "finetune" else {}
    check_keys(training, p, "", {"kind": str, "epoch": int, "metric": dict, "flags": dict} | lineage,
               {"software": dict})
    check_keys(training["metric"], p, "metric", {"name": str, "value": (int, float)})
    plain = (str, int, float, bool, type(None))
    check_keys(training["flags"], p, "flags", {}, {k: plain for k in training["flags"]})
    lineage = training.get("pretrained")
    if lineage is not None:
        check_keys(lineage, p, "pretrained", {"sha256": str})
    software = training.get("software")
    if software is not None:  # harness/provenance.py: package versions, the code's commit
        check_keys(software, p, "software", {"packages": dict, "code": (dict, str)})
        check_keys(software["packages"], p, "software.packages", {}, {k: (str, type(None))
                                                                       for k in software["packages"]})
        if isinstance(software["code"], dict):
            check_keys(software["code"], p, "software.code", {"commit": str, "dirty": bool})


def read_tokenizer(path: Path, config: dict) -> tokenizer.Tokenizer:
    """The tokenizer's files (plain files of plain names, none too large), read, and refused unless they give the
    kind, language and fingerprint config.json records."""
    folder = path / TOKENIZER
    for p in sorted(folder.rglob("*")):
        if p.is_symlink() or not (p.is_file() or p.is_dir()) or p.is_file() and p.stat().st_size > MAX_TOKENIZER_FILE:
            refuse(p, "is a link, not a plain file, or larger than any tokenizer file")
    try:
        tok = tokenizer.Tokenizer.load(folder)
    except Exception as e:  # whatever the tokenizer libraries raise on damaged files
        refuse(folder, f"cannot be read as a tokenizer ({type(e).__name__}: {str(e)[:200]})")
    want = config["tokenizer"]
    got = {"kind": tok.kind, "lang_code": tok.lang_code, "fingerprint": tok.fingerprint()}
    wrong = [k for k in ("kind", "lang_code", "fingerprint") if got[k] != want[k]]
    if wrong:
        refuse(folder, f"does not give config.json's field tokenizer.{wrong[0]} ({str(want[wrong[0]])[:16]}; its "
                       f"files give {str(got[wrong[0]])[:16]}): another run's tokenizer, or edited files")
    return tok


def expected_tensors(cfg: model.Config, kind: str, standalone: bool, p: Path) -> dict:
    """name -> (shape, dtype) of the tensors the folder must hold: those of the model its config builds (on the
    meta device: nothing allocated), refused when it has more than MAX_PARAMETERS."""
    build = model.build_pretrain_model if kind == "pretrain" else model.build_translation_model
    with torch.device("meta"):  # its size was estimated from config.json's numbers first (limits.problem)
        net = build(dataclasses.replace(cfg, pretrained=False))
    total = sum(t.numel() for t in net.state_dict().values())
    if total > limits.MAX_PARAMETERS:
        refuse(p, f"gives a model of {total:,} weights (fields model.*), more than {limits.MAX_PARAMETERS:,}")
    names = {n for n, q in net.named_parameters() if q.requires_grad or standalone}
    return {k: (list(v.shape), v.dtype) for k, v in trainable_state(net, names, cpu=False).items()}


def check_header(p: Path, expected: dict):
    """model.safetensors' header, read as JSON without loading a tensor: a safetensors file (not a pickle or
    torch file under its name), whole (every tensor inside the file), holding exactly the `expected` tensors."""
    size = p.stat().st_size
    with open(p, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= n <= min(size - 8, MAX_HEADER):
            kind = " (it begins as a zip or torch file)" if head[:2] == b"PK" else \
                " (it begins as a Python pickle, which is never loaded)" if head[:1] == b"\x80" else ""
            refuse(p, f"is not a safetensors file{kind}: its first 8 bytes give a header of {n} bytes in a file of "
                      f"{size}")
        text = f.read(n)
    if text.startswith(b"\xef\xbb\xbf"):
        refuse(p, "has a header that begins with a UTF-8 byte-order mark, which safetensors files never hold")
    try:
        header = limits.loads(text, "its header")
    except ValueError as e:  # UnicodeDecodeError and JSONDecodeError among them
        refuse(p, f"has a header that is not JSON ({str(e)[:80]}): not a safetensors file, or damaged")
    if not isinstance(header, dict):
        refuse(p, "has a header that is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        refuse(p, f"has a __metadata__ that is not an object of strings ({str(metadata)[:60]}): not a safetensors "
                  "file this project reads")
    for name, entry in header.items():
        if name not in expected:
            refuse(p, f"holds tensor '{name}', which the model of its config.json has not (or does not keep)")
        shape, dtype = expected[name]
        ok = isinstance(entry, dict) and entry.get("dtype") in DTYPES and isinstance(entry.get("shape"), list)
        if not ok or entry["shape"] != shape or DTYPES[entry["dtype"]] != dtype:
            refuse(p, f"tensor '{name}': {entry.get('dtype') if ok else '?'} {entry.get('shape') if ok else '?'}, but "
                      f"the model of its config.json has {NAMES[dtype]} {shape}")
        offsets = entry.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
            refuse(p, f"tensor '{name}': data_offsets {offsets!r} are not two byte positions")
    end = 0
    for name, entry in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        first, last = entry["data_offsets"]
        shape, dtype = expected[name]
        if first != end or last != first + math.prod(shape) * torch.empty((), dtype=dtype).element_size():
            refuse(p, f"tensor '{name}': data_offsets {entry['data_offsets']} do not follow the tensor before it "
                      "or do not fit its shape")
        end = last
    missing = sorted(set(expected) - set(header))
    if missing:
        refuse(p, f"lacks tensor '{missing[0]}' ({len(missing)} missing) that the model of its config.json keeps")
    if end != size - 8 - n:
        refuse(p, f"is cut off or padded: its tensors end at byte {end:,} of the data, which holds {size - 8 - n:,}")


# ----------------------------------------------------------------------------------------------
# Building the model of a folder

def base_name(kept: Kept, base: str, given: str = None) -> str:
    """Where a base's weights come from: the user's --dino/--mbart, else the hub id the folder records; a local
    folder it was trained on is never opened by name: the user passes it."""
    if given:
        return given
    entry, flag = kept.config["bases"][base], BASE_FLAGS[base]
    if entry["hub_id"] is None:
        refuse(kept.path / CONFIG, f"field bases.{base}: it was trained on a local folder ('{entry['folder']}'), which "
                                   f"a folder never names as a path: pass that folder with {flag} DIR")
    if Path(entry["hub_id"]).exists():
        refuse(kept.path / CONFIG, f"field bases.{base}: hub id '{entry['hub_id']}' names a path here, which is not "
                                   f"opened on a folder's word: pass it with {flag} {entry['hub_id']} if it is "
                                   "the base")
    return entry["hub_id"]


@contextlib.contextmanager
def loading_bases(cfg: model.Config):
    """DINOv2 or mBART that cannot be loaded (no network, a wrong name): an error naming the flag that passes a
    local folder, instead of a traceback."""
    try:
        yield
    except (OSError, ValueError) as e:
        raise SystemExit(f"could not load the bases {cfg.dino!r} and {cfg.mbart!r} ({type(e).__name__}: {e}).\n"
                         "Download them where the hub is reachable and pass their local folders with --dino PATH and "
                         "--mbart PATH.") from None


def build(kept: Kept, kind: str, device="cpu", dino: str = None, mbart: str = None):
    """The model of a checked folder (read()), in eval mode on `device`: its bases loaded from --dino/--mbart or the
    hub ids it records and refused unless their widths and frozen weights are those it records (a standalone
    folder holds every weight; the tiny preset's bases are seeded random weights), then its weights loaded."""
    cfg = kept.cfg
    if kept.config["standalone"]:
        cfg = dataclasses.replace(cfg, pretrained=False)   # every weight is in the folder
    elif cfg.pretrained:
        cfg = dataclasses.replace(cfg, dino=base_name(kept, "dino", dino), mbart=base_name(kept, "mbart", mbart))
        with loading_bases(cfg):
            widths = limits.widths_from_bases(cfg)
        for field in ("dino_arch", "mbart_arch", "llm_dim"):
            if getattr(widths, field) != getattr(kept.cfg, field):
                base = "mbart" if field != "dino_arch" else "dino"
                refuse(kept.path / CONFIG, f"field model.{field} is {getattr(kept.cfg, field)}, but the base "
                                           f"'{getattr(cfg, base)}' has {getattr(widths, field)}: not the base it was "
                                           "trained on")
    make = model.build_pretrain_model if kind == "pretrain" else model.build_translation_model
    with loading_bases(cfg):
        net = make(cfg, keep_ids=kept.tok.keep_ids if cfg.pretrained else None)
    names = {n for n, p in net.named_parameters() if p.requires_grad}
    net.load_state_dict(kept.state, strict=False)
    check_bases(kept, net, names, (("dino", "sha256"), ("mbart", "sha256")), cfg)
    return net.to(device).eval()


def check_bases(kept: Kept, net, names: set, fields: tuple, cfg: model.Config):
    """Refuses, naming the base, frozen weights of `net` (those not in `names`) that do not give the sha256s
    config.json records in `fields` ((base, key), ...)."""
    got = base_fingerprints(net, names)
    for base, key in fields:
        want = kept.config["bases"][base][key]
        if got[base][key] != want:
            source = getattr(cfg, base) if cfg.pretrained else "the seeded random weights of the preset"
            refuse(kept.path / CONFIG, f"field bases.{base}.{key}: the frozen weights of the base '{source}' give "
                                       f"{got[base][key][:12]}, the folder records {want[:12]}: not the base it was "
                                       f"trained on (pass that one with {BASE_FLAGS[base]}, or use a --standalone "
                                       "folder)")


# ----------------------------------------------------------------------------------------------
# One call

def from_pretrained(spec, kind: str = "finetune", device="cpu", dino: str = None, mbart: str = None):
    """The model of the kept folder or hub id `spec` and its tokenizer, as `read` and `build` check them: the
    `kind` ('finetune': TranslationModel, 'pretrain': PretrainModel) in eval mode on `device`; `dino`/`mbart` the
    base folders of a folder trained on local ones. -> (model, tokenizer.Tokenizer)"""
    kept = read(spec, kind, "from_pretrained")
    return build(kept, kind, device, dino, mbart), kept.tok
