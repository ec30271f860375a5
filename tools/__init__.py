"""Every command around the method, each run as `python -m tools.NAME`: the demo (demo), packing and checking a
dataset (prepare), the generated corpora (synthetic, fullsize), retrieval, localisation and a video of your own
(analysis), the ablation study (study), the memory of a training step before the first (memory), the benchmarks
(benchmark, startup), Table 3 per part (table3) and the tagger measurements (tagger_scores)."""
