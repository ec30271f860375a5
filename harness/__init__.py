"""What keeps a run safe and running, apart from the method; no paper file imports it. The one object a training
loop talks to (ledger), flags made from the recipes' blocks and their types (cli) and --config's flag files
(flagfile), the run's folder and its lock (outdir), the config's numbers checked before building (limits), set-up
of data, tokenizer, config and model, the loaders and translation (run), checkpoints and --resume (checkpoint), the
kept weights as Hugging Face folders and from_pretrained (hf_folder), their model cards (card) and the software
that made them (provenance), the pseudo-gloss cache (pseudogloss_cache), progress, logs and the non-finite stop
(logs) and data-parallel training (parallel)."""
