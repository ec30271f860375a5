"""The datasets beyond PHOENIX14T and what reading any dataset needs besides the paper: one file per layout
(how2sign, csl_daily, custom), decoding of frame files and video files (decode), the English and Chinese
taggers (taggers), the JPEG frame packs (pack), the checks before training (check) and the one-off command
that packs and checks a dataset (prepare). data.py plugs the layouts in (data.LAYOUTS)."""


