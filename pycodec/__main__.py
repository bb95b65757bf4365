"""``python -m pycodec``: the command line (see pycodec.cli)."""

import sys

from pycodec._entry import main

sys.exit(main())
