"""``python -m paper_checks``: run the paper's checks and write the report (see paper_checks.cli)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
