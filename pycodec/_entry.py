"""Entry point of the ``pycodec`` command and of ``python -m pycodec``.

Standard library only: the heavy imports (numpy, h5py, the extension) happen inside ``main``, so that
a Ctrl-C while they load ends with one line and exit code 130 instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Import the command line and run it; returns the exit code."""
    try:
        from pycodec import cli
    except KeyboardInterrupt:
        sys.stderr.write("pycodec: error: interrupted; nothing was written\n")
        return 130
    return cli.main(argv)
