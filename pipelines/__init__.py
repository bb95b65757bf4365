"""Dataset building for restoration models: talking-head videos in, ``pycodec/1`` training shards out.

Each step is a module usable on its own (``python -m pipelines.<step> --help``) and a pure function
of its inputs and settings; ``make dataset`` (``pipelines.plan``) wires them into one Make target
per source video and setting.  See ``docs/dataset.md``.
"""
