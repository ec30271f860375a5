"""What made a run, beside its flags: the versions of the packages the result depends on and the commit of the
code, recorded in the kept folder's training.json (harness/hf_folder.py), so that a result can be traced to its
code (DESIGN.md "Runs and checkpoints")."""
import functools
import subprocess
from importlib import metadata
from pathlib import Path

# the model and training (torch, transformers), the tokenizers, the prototypes (fasttext), the taggers of the
# pseudo-glosses (HanTa: German, jieba: Chinese), the weights' and scores' formats
PACKAGES = ("torch", "transformers", "sentencepiece", "fasttext", "HanTa", "jieba", "safetensors", "huggingface_hub",
            "sacrebleu", "numpy")
NOT_GIT = "not a git checkout"
PROJECT = Path(__file__).resolve().parent.parent


@functools.cache
def software() -> dict:
    """{"packages": name -> version (None: not installed), "code": {"commit", "dirty"} or NOT_GIT}; once per
    process."""
    return {"packages": {name: installed(name) for name in PACKAGES}, "code": code()}


def installed(name: str):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def code():
    """The commit of the project's folder and whether its tree differs from it (changed or untracked files; the
    ignored runs/ and data/ aside), or NOT_GIT when it is not a git checkout or git is missing."""
    def git(*argv):
        return subprocess.run(["git", *argv], cwd=PROJECT, capture_output=True, text=True, timeout=60)
    try:
        head = git("rev-parse", "--verify", "HEAD")
        status = git("status", "--porcelain") if head.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return NOT_GIT
    if head.returncode != 0 or status.returncode != 0:
        return NOT_GIT
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}
