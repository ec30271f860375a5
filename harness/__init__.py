"""What keeps a run safe and running, apart from the method: flags and their types (cli), the run's folder and
its lock (outdir), set-up of data, tokenizer, config and model (run), checkpoints and --resume (checkpoint),
progress, logs and the non-finite stop (logs), data-parallel training (parallel) and the one temp-and-rename
with the checked readers of annotation files (files)."""


