"""The levels below translation, measured with a run's pre-training checkpoint (DESIGN.md "Evaluation"):
retrieval at the video level (R@k both ways, eq. 4's embeddings), where the segment level finds each
pseudo-gloss (eqs. 1-3's evidence E) on a corpus with sign timings, and one video of your own, translated
with the pseudo-glosses found in it drawn under its frames.

    python -m tools.analysis --data synthetic --split test       # retrieval and localisation of a split
    python -m tools.analysis --data synthetic --video clip.mp4   # a video file, or a folder of frame images
"""
import functools
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import data
import evaluate
import losses
import optim
from corpora import decode, files
from harness import cli, hf_folder, run
from tools import synthetic


def pretraining(args, kept: hf_folder.Kept):
    """The pre-training folder for the levels below translation (retrieval, localisation, --video's
    pseudo-glosses): --pretrained (a folder or hub id), else the folder pretrain/ beside the fine-tuned one. Used
    only if it is the one that model was fine-tuned from (the sha256 finetune.py records) with its tokenizer;
    otherwise the default is not used and the output says why, and --pretrained is an error. -> the folder, read
    once (hf_folder.Kept); None: not used."""
    what = "pseudo-glosses not shown" if args.video else "retrieval and localisation not measured"
    path = kept.path.parent / "pretrain" if args.pretrained is None else Path(args.pretrained)
    if args.pretrained is None and not path.is_dir():
        print(f"{what}: no pre-training folder '{path}'")
        return None
    pre = hf_folder.read(path if args.pretrained is None else args.pretrained, "pretrain", "--pretrained")
    lineage = kept.training["pretrained"]
    path = pre.path
    mine, theirs = kept.tok.fingerprint(), pre.tok.fingerprint()
    if theirs != mine:
        why = f"its tokenizer differs ({theirs[:12]}, the model's {mine[:12]}): another run's pre-training"
    elif lineage is None:
        why = "the model was fine-tuned without pre-training (--pretrained none)"
    elif lineage.get("sha256") != hf_folder.digest(path):
        why = "it is not the pre-training that the model was fine-tuned from (another or a later pretrain.py run)"
    else:
        return pre
    if args.pretrained is not None:
        raise SystemExit(f"--pretrained '{args.pretrained}' does not belong to '{kept.path}': {why}")
    print(f"{what}: '{path}' does not belong to '{kept.path}': {why}")
    return None


# --video is read with its frames scaled down (aspect kept) to this shorter side while decoding: memory follows
# this size, not the file's (a 1080p clip would take 6 MB a frame); the model's resize_crop squashes to a square
# of at most this side, so the smaller frames change nothing but the filter.
VIDEO_SHORT_SIDE = 256


def read_video(path, frame_stride: int = 1, max_frames: int = 300) -> tuple:
    """The frames of a video file (PyAV) or of a folder of frame images (in natural name order) that the
    evaluation reads (data.select_frames), as uint8 [N, H, W, 3] at most VIDEO_SHORT_SIDE on the shorter side;
    only those are ever held. -> (pixels, their indices, every frame's time in seconds; None for a folder)"""
    path = Path(path)
    if not path.is_dir() and (path.suffix.lower() not in decode.VIDEO_SUFFIXES or not path.is_file()):
        raise FileNotFoundError(f"--video '{path}': not a video file ({', '.join(sorted(decode.VIDEO_SUFFIXES))}) "
                                "or a folder of frame images")
    select = functools.partial(data.select_frames, frame_stride=frame_stride, max_frames=max_frames)
    return decode.read_selected(path, select, short_side=VIDEO_SHORT_SIDE)


def checked_video(args) -> tuple:
    """read_video, before --out is claimed: a missing, unreadable or damaged video, a FIFO or a frame too large is
    a SystemExit naming it, and nothing is written."""
    from PIL import Image
    try:
        return read_video(args.video, args.frame_stride, args.max_frames)
    except (OSError, ValueError, Image.DecompressionBombError) as e:  # av's errors are OSError or ValueError
        why = str(e).removeprefix(f"--video '{args.video}': ")
        raise SystemExit(f"--video '{args.video}' cannot be read: {why}; nothing was written") from None


def video_batch(pixels: np.ndarray, name: str, setup: run.Setup) -> dict:
    """A one-video batch of the selected frames as the evaluation loader yields it (resize_crop, collate)."""
    frames = data.resize_crop(pixels, setup.cfg.image_size, train=False)
    return data.collate([{"name": name, "translation": "", "frames": frames}])


def load_pretrain(setup: run.Setup, pre: hf_folder.Kept) -> tuple:
    """The pre-training model of a run's folder (read by hf_folder.read; its own config: U pseudo-glosses), in eval
    mode, its pseudo-gloss vocabulary (which the folder carries; the trained prototypes are among its weights) and
    eq. 2's temperature tau it was trained with."""
    args = setup.args
    net = hf_folder.build(pre, "pretrain", setup.device, args.dino, args.mbart)
    return net, pre.config["pseudoglosses"], pre.training["flags"]["tau"]


@torch.no_grad()
def pretrain_outputs(net, batch, setup: run.Setup, tau: float) -> tuple:
    """A batch through the pre-training model (its sentences through the text encoder; "" for a video of your
    own): eq. 4's pooled video and text embeddings, L2-normalised [B, D]; eqs. 1-3's evidence E [B, T, U]
    (segments x pseudo-glosses, the non-sign column dropped); the segment mask [B, T]."""
    (ids, text_mask), _, _ = data.text_batch(setup.tok, batch["translations"], setup.device)
    with optim.autocast(setup.device):
        out = net(*data.prepare(batch, setup.device, train=False), ids, text_mask)
    video = losses.masked_mean(out["video"], out["video_mask"])                  # M~ (CLS and valid segments)
    text = losses.masked_mean(out["text"], out["text_mask"])                     # L~
    e = losses.gloss_evidence(out["z_prime"], out["mask"], out["prototypes"], tau, tau)
    return F.normalize(video.float(), dim=-1), F.normalize(text.float(), dim=-1), e[..., :-1].float(), out["mask"]


def recall_at_k(sim: torch.Tensor, ks=(1, 5, 10)) -> dict:
    """sim [N, N]: query i against candidate j, the match of query i being candidate i. R@k (in %) = the share
    of queries whose match ranks in the top k; rank = 1 + the candidates scoring strictly above the match."""
    rank = 1 + (sim > sim.diagonal()[:, None]).sum(1)
    return {k: 100 * (rank <= k).float().mean().item() for k in ks}


def segment_frames(j: int, n_frames: int) -> range:
    """The frames (0-based, after frame selection) that segment j pools: avg_pool1d(3, stride 2, padding 1)."""
    return range(max(2 * j - 1, 0), min(2 * j + 2, n_frames))


def localisation(evidence: torch.Tensor, n_frames: int, spans: dict) -> list:
    """One video: for each pseudo-gloss u signed in it (spans: u -> its frames, 0-based after frame
    selection), (hit, chance): hit = the segment where E[:, u] peaks pools a frame of the span; chance = the
    share of the video's segments that would. evidence [T, U] over the valid segments."""
    results = []
    for u, frames in spans.items():
        inside = [any(f in frames for f in segment_frames(j, n_frames)) for j in range(len(evidence))]
        results.append((inside[int(evidence[:, u].argmax())], sum(inside) / len(inside)))
    return results


def selected_spans(signs: list, keep: np.ndarray, index: dict) -> dict:
    """Ground-truth signs [(pseudo-gloss, first, last), 1-based frame numbers] -> pseudo-gloss index -> the
    0-based positions, in the selected frames `keep`, of its frames; glosses outside the vocabulary skipped."""
    spans = {}
    for gloss, first, last in signs:
        if gloss in index:
            spans.setdefault(index[gloss], set()).update(i for i, f in enumerate(keep) if first - 1 <= f <= last - 1)
    return {u: s for u, s in spans.items() if s}


def measure_split(setup: run.Setup, split: str, pretrained: dict) -> dict:
    """Retrieval R@1/5/10 both ways over a split and, on a corpus with sign timings, localisation accuracy and
    its chance level, with the pre-training checkpoint `pretrained`; prints the `retrieval` and `localisation`
    lines."""
    net, vocab, tau = load_pretrain(setup, pretrained)
    loader = run.loader(setup, split, augment=False)
    truth, index = synthetic.read_ground_truth(setup.root, split), {g: i for i, g in enumerate(vocab)}
    videos, texts, pairs = [], [], []
    for batch in loader:
        video, text, evidence, mask = pretrain_outputs(net, batch, setup, tau)
        videos.append(video.cpu())
        texts.append(text.cpu())
        for i, name in enumerate(batch["names"]):
            if name in truth:
                keep = loader.dataset.frame_indices(name)
                spans = selected_spans(truth[name], keep, index)
                pairs += localisation(evidence[i, :int(mask[i].sum())].cpu(), len(keep), spans)
    sim = torch.cat(videos) @ torch.cat(texts).T                                 # [N videos, N sentences]
    v2t, t2v = recall_at_k(sim), recall_at_k(sim.T)
    print(f"retrieval {split} ({len(sim)} videos): video-to-text " + " ".join(f"R@{k} {v:.1f}" for k, v in v2t.items())
          + ", text-to-video " + " ".join(f"R@{k} {v:.1f}" for k, v in t2v.items()))
    result = {"r1_v2t": v2t[1], "r1_t2v": t2v[1], "r5_v2t": v2t[5], "r10_v2t": v2t[10]}
    if pairs:
        result |= {"localisation": 100 * float(np.mean([h for h, _ in pairs])),
                   "chance": 100 * float(np.mean([c for _, c in pairs]))}
        print(f"localisation {split}: {result['localisation']:.1f}% of {len(pairs)} (video, pseudo-gloss) pairs peak "
              f"in a segment of their signed span (chance {result['chance']:.1f}%)")
    return result


def found_glosses(evidence: torch.Tensor, threshold: float, top: int) -> list:
    """The pseudo-glosses with E-hat (eq. 3, E summed over segments) >= threshold, strongest first; when
    none is, the `top` strongest. evidence [T, U]."""
    e_hat = evidence.sum(0)
    order = e_hat.argsort(descending=True).tolist()
    chosen = [u for u in order if e_hat[u] >= threshold]
    return chosen or order[:top]


def peak_span(column: torch.Tensor, n_frames: int) -> tuple:
    """Where one pseudo-gloss is strongest: the stretch of segments around its peak with E >= half the peak, as
    (first, last) frames (0-based, after frame selection) that those segments pool."""
    peak = int(column.argmax())
    lo = hi = peak
    while lo > 0 and column[lo - 1] >= column[peak] / 2:
        lo -= 1
    while hi < len(column) - 1 and column[hi + 1] >= column[peak] / 2:
        hi += 1
    return segment_frames(lo, n_frames)[0], segment_frames(hi, n_frames)[-1]


def show_glosses(setup, pretrained: dict, batch, pixels, keep, times, translation) -> Path:
    """Prints the pseudo-glosses the segment level finds in a one-video batch (E-hat >= --threshold, else the
    --top strongest), each with the frames (and seconds: `times`, every frame's, from a video file) where it is
    strongest, and draws them under the frames: <out>/<name>.glosses.png; `pretrained`: the pre-training
    checkpoint."""
    name, threshold, top = batch["names"][0], setup.args.threshold, setup.args.top
    net, vocab, tau = load_pretrain(setup, pretrained)
    _, _, evidence, mask = pretrain_outputs(net, batch, setup, tau)
    evidence = evidence[0, :int(mask[0].sum())].cpu()                           # [T, U]
    chosen = found_glosses(evidence, threshold, top)
    print(f"pseudo-glosses found (E-hat >= {threshold}, else the {top} strongest):")
    for u in chosen:
        first, last = peak_span(evidence[:, u], len(keep))
        where = f"frames {keep[first] + 1}-{keep[last] + 1}"
        if times:  # from the first kept frame's start to the next frame's (the last one's: plus the median gap)
            gap = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
            end = times[keep[last] + 1] if keep[last] + 1 < len(times) else times[-1] + gap
            where += f" ({times[keep[first]]:.2f}-{end:.2f} s)"
        print(f"  {vocab[u]:<16} E-hat {float(evidence[:, u].sum()):.2f}  {where}")
    png = setup.args.out / f"{name}.glosses.png"
    plot_glosses(png, pixels, evidence[:, chosen].numpy(), [vocab[u] for u in chosen], translation)
    print(f"wrote {png}")
    return png


def plot_glosses(png: Path, pixels: np.ndarray, evidence: np.ndarray, names: list, title: str):
    """A strip of thumbnails of the selected frames pixels [N, H, W, 3] along time and, on the same frame axis,
    the heatmap of E [T segments, G glosses]: segment j drawn over frames 2j-1..2j+1 (its pooling window)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    n, k = len(pixels), min(len(pixels), 20)
    step = math.ceil(n / k)
    fig, (strip, heat) = plt.subplots(2, 1, sharex=True, figsize=(12, 1.6 + 0.3 * len(names) + 12 / k),
                                      gridspec_kw={"height_ratios": [12 / k, 0.3 * len(names) + 0.8]})
    for i in range(0, n, step):
        strip.imshow(pixels[i], extent=(i - 0.5, i - 0.5 + step, 0, 1), aspect="auto")
    strip.set(yticks=[], xlim=(-0.5, n - 0.5), ylim=(0, 1), title=f"translation: {title}")
    x = np.clip(2 * np.arange(len(evidence) + 1) - 1, -0.5, n - 0.5)      # segment edges, in frames
    mesh = heat.pcolormesh(x, np.arange(len(names) + 1), evidence.T, cmap="viridis", shading="flat")
    heat.set_yticks(np.arange(len(names)) + 0.5, names)
    heat.invert_yaxis()
    heat.set_xlabel("frame (after frame selection)")
    fig.colorbar(mesh, ax=[strip, heat], label="E = S^T * S^U (eqs. 1-3)", fraction=0.03, pad=0.01)
    files.atomic_write(png, lambda tmp: fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)


def main(argv=None):
    ap = evaluate.flags(__doc__)
    ap.add_argument("--video", type=Path, help="translate this video (mp4, webm, avi, mov; or a folder of frame "
                    "images) instead of measuring a split; reads no dataset")
    ap.add_argument("--pretrained", help="the pre-training folder or hub id (default: the folder pretrain/ beside "
                    "--checkpoint); only the one the model was fine-tuned from is used")
    ap.add_argument("--threshold", type=cli.non_negative_float, default=0.5,
                    help="--video: show pseudo-glosses with E-hat above this")
    ap.add_argument("--top", type=cli.positive_int, default=5, help="--video: else the strongest few")
    args = cli.parse(ap, argv, "analysis")
    kept = hf_folder.read(args.checkpoint or args.out / "finetune", "finetune")
    pretrained = pretraining(args, kept)  # checked before anything is translated or written
    if not args.video:
        if pretrained is None:
            return {}
        setup, _ = evaluate.translation_model(args, kept, splits=(args.split,))
        return measure_split(setup, args.split, pretrained)
    evaluate.check_max_new_tokens(args, kept)
    pixels, keep, times = checked_video(args)
    setup, net = evaluate.translation_model(args, kept, stage="video")  # --out checked and claimed
    name = args.video.stem if args.video.is_file() else args.video.name
    batch = video_batch(pixels, name, setup)
    hyp = run.translate(net, [batch], setup.tok, setup.device, args.beams, args.max_new_tokens)[0][0]
    print(f"translation: {hyp}")
    if pretrained:
        show_glosses(setup, pretrained, batch, pixels, keep, times, hyp)
    return {"translation": hyp}


if __name__ == "__main__":
    main()
