"""The numbers of a kept-weights folder's config.json (harness/hf_folder.py), checked as numbers before anything
is built: every width, layer count and head count positive, heads dividing their width, the patch dividing the
image, layer counts and the parameter count (worked out from the widths, not from a model) within bounds. A
crafted config.json then costs a refusal, never minutes of building or gigabytes of memory. With real weights,
the widths themselves are the bases' (widths_from_bases)."""
import dataclasses
import json
import re

MAX_PARAMETERS = 4_000_000_000   # 5x the paper preset: a config that asks for more is refused before allocating
MAX_LAYERS = 256                 # per stack (the paper's deepest: 12); building 65,536 took minutes on meta
MAX_DEPTH = 32                   # JSON nesting: config.json and a safetensors header are 3 deep
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # a JSON string (skipped whole), or a bracket

POSITIVE = ("image_size", "frame_dim", "temporal_layers", "temporal_heads", "temporal_mlp", "window", "llm_dim",
            "gloss_dim", "lora_r", "dino_lora_r", "vocab_size",
            "dino_arch.hidden_size", "dino_arch.num_hidden_layers", "dino_arch.num_attention_heads",
            "dino_arch.intermediate_size", "dino_arch.patch_size", "dino_arch.image_size",
            "mbart_arch.d_model", "mbart_arch.encoder_layers", "mbart_arch.decoder_layers",
            "mbart_arch.encoder_attention_heads", "mbart_arch.decoder_attention_heads", "mbart_arch.encoder_ffn_dim",
            "mbart_arch.decoder_ffn_dim", "mbart_arch.max_position_embeddings")
LAYERS = ("temporal_layers", "dino_arch.num_hidden_layers", "mbart_arch.encoder_layers", "mbart_arch.decoder_layers")
# (part, whole): the first must divide the second
DIVIDES = (("temporal_heads", "frame_dim"), ("dino_arch.num_attention_heads", "dino_arch.hidden_size"),
           ("mbart_arch.encoder_attention_heads", "mbart_arch.d_model"),
           ("mbart_arch.decoder_attention_heads", "mbart_arch.d_model"),
           ("dino_arch.patch_size", "image_size"), ("dino_arch.patch_size", "dino_arch.image_size"))


def problem(fields: dict, reference: dict) -> str:
    """What is wrong with config.json's model fields `fields` (already typed and within 0..65,536), as a message
    naming the field; None when nothing is. A field the folder leaves out of dino_arch/mbart_arch takes the paper
    preset's value (`reference`), as the model would take transformers' default."""
    def get(name):
        arch, _, key = name.rpartition(".")
        return fields[arch].get(key, reference[arch][key]) if arch else fields[name]
    for name in POSITIVE:
        if get(name) <= 0:
            return f"field model.{name} is {get(name)}: a width, size or count must be positive"
    for name in LAYERS:
        if get(name) > MAX_LAYERS:
            return f"field model.{name} is {get(name)}: more than {MAX_LAYERS} layers"
    for part, whole in DIVIDES:
        if get(whole) % get(part):
            return f"field model.{part} {get(part)} does not divide model.{whole} {get(whole)}"
    if (get("frame_dim") // get("temporal_heads")) % 2:
        return (f"field model.frame_dim {get('frame_dim')} / temporal_heads {get('temporal_heads')} is odd: RoPE "
                "rotates pairs of a head's channels")
    if get("dino_lora_blocks") > get("dino_arch.num_hidden_layers"):
        return (f"field model.dino_lora_blocks {get('dino_lora_blocks')} is more than dino_arch.num_hidden_layers "
                f"{get('dino_arch.num_hidden_layers')}")
    total = estimate_parameters(get)
    if total > MAX_PARAMETERS:
        return f"gives a model of about {total:,} weights (fields model.*), more than {MAX_PARAMETERS:,}"
    return None


def estimate_parameters(get) -> int:
    """About the weights of either model, from the config's numbers, get(name) -> value: both the decoder (the
    translation model's) and the frozen copy of the encoder (the pre-training model's) are counted, and of each
    part the matrices (biases and norms are a few per mille): the paper preset gives 550M, its two models 346M
    and 403M built (vocabulary 2,172). DINOv2: patch and position embeddings, per block 4 h^2 attention + 2 h I
    MLP; the temporal encoder alike; mBART: embeddings and positions (the encoder's copy has its own), per
    encoder layer 4 D^2 + 2 D F, per decoder layer 8 D^2 + 2 D F; LoRA; the pseudo-gloss head."""
    h, patch = get("dino_arch.hidden_size"), get("dino_arch.patch_size")
    dino = get("dino_arch.num_hidden_layers") * (4 * h * h + 2 * h * get("dino_arch.intermediate_size")) \
        + 3 * patch * patch * h + ((get("dino_arch.image_size") // patch) ** 2 + 1) * h
    f, d = get("frame_dim"), get("mbart_arch.d_model")
    temporal = get("temporal_layers") * (4 * f * f + 2 * f * get("temporal_mlp")) + h * f + f * get("llm_dim")
    encoder = get("mbart_arch.encoder_layers") * (4 * d * d + 2 * d * get("mbart_arch.encoder_ffn_dim"))
    decoder = get("mbart_arch.decoder_layers") * (8 * d * d + 2 * d * get("mbart_arch.decoder_ffn_dim"))
    mbart = (2 * get("vocab_size") + 3 * get("mbart_arch.max_position_embeddings")) * d + 2 * encoder + decoder
    lora = 2 * get("lora_r") * d * (2 * get("mbart_arch.encoder_layers") + 4 * get("mbart_arch.decoder_layers")) \
        + 2 * get("dino_lora_r") * h * 3 * get("dino_lora_blocks")
    glosses = (get("llm_dim") + get("n_glosses")) * get("gloss_dim")
    return dino + temporal + mbart + lora + glosses


def loads(text, what: str):
    """json.loads, refusing nesting deeper than MAX_DEPTH with a ValueError naming `what` (the C parser would
    recurse until RecursionError on 200,000 brackets); the depth is counted on the text, strings left out."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    depth = deepest = 0
    for token in _STRUCTURE.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                raise ValueError(f"{what} nests deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1
    return json.loads(text)


def widths_from_bases(cfg):
    """A model.Config with real weights takes the checkpoints' widths (any DINOv2 and mBART-family checkpoint): the
    image encoder's from DINOv2's config, the LLM's (D of Z, M and the mapper) from mBART's d_model."""
    if not cfg.pretrained:
        return cfg
    from transformers import AutoConfig
    dino, mbart = AutoConfig.from_pretrained(cfg.dino).to_dict(), AutoConfig.from_pretrained(cfg.mbart).to_dict()
    return dataclasses.replace(cfg, dino_arch={k: dino[k] for k in cfg.dino_arch if k in dino},
                               mbart_arch={k: mbart[k] for k in cfg.mbart_arch if k in mbart}, llm_dim=mbart["d_model"])
