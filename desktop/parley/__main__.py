"""``python -m parley`` runs the command line (which opens the window with no arguments).

Also the entry point of the frozen (PyInstaller) app.
"""

import multiprocessing
import sys

if __name__ == "__main__":
    # First thing: in the frozen app, worker processes (the indexer's ``spawn`` worker, the
    # loaders' ``forkserver``) re-run this executable with multiprocessing's own arguments;
    # freeze_support() runs the worker and exits instead of starting Parley again.
    # Elsewhere it does nothing.
    multiprocessing.freeze_support()

    from parley.cli import main

    sys.exit(main())
