"""``python -m pycodec``: the command line (see pycodec.cli)."""

import sys

from pycodec.cli import main

sys.exit(main())
