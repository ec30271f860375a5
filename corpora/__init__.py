"""The datasets beyond PHOENIX14T and what reading any dataset needs besides the paper; it imports nothing of the
project above it: one file per layout (how2sign, csl_daily, custom), decoding of frame files and video files
(decode), the checked reading and the one atomic write of files (files), the English and Chinese taggers
(taggers), fastText's file check (fasttext_bin), the JPEG frame packs (pack) and the checks before training
(check). data.py plugs the layouts in (data.LAYOUTS)."""
