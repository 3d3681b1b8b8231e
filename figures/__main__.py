"""``python -m figures RESULTS --out DIR`` (see figures.cli)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
