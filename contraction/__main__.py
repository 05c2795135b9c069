"""``python -m contraction``: the ``contraction`` command."""

import sys

from .cli import main

sys.exit(main())
