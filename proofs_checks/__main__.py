"""``python -m proofs_checks``: run the theorem checks and print the table (no figures, no CLI import)."""

import sys

from proofs_checks import main

sys.exit(main())
