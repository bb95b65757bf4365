"""Trained checkpoints shipped with pycodec (fp16, at most 20 MB each): ``NAME.pt`` for
:func:`pycodec.models.load` and ``NAME.json``, its card (config, data hash, iterations, validation
and test figures).  Written by ``python -m pipelines.ship``; docs/results-mdvd.md."""
