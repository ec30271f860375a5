"""Tools around the method, each run as `python -m tools.NAME`: the synthetic corpora (synthetic), retrieval,
localisation and a video of your own (analysis), the ablation study (study), the benchmark (benchmark) and the
tagger measurements (tagger_scores)."""


