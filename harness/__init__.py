"""What keeps a run safe and running, apart from the method: flags and their types (cli) and --config's flag files
(flagfile), the run's folder and its lock (outdir), set-up of data, tokenizer, config and model (run), checkpoints
and --resume (checkpoint), the kept weights as Hugging Face folders and from_pretrained (hf_folder), their model
cards (card) and the software that made them (provenance), progress, logs and the non-finite stop (logs) and
data-parallel training (parallel)."""
