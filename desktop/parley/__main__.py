"""``python -m parley`` runs the command line (which opens the window with no arguments)."""

import sys

from parley.cli import main

if __name__ == "__main__":
    sys.exit(main())
