"""Runtime hook: programs Parley starts get the person's environment, not the bundle's.

On Linux the bootloader prepends the bundle's folder to ``LD_LIBRARY_PATH`` (keeping the
original in ``LD_LIBRARY_PATH_ORIG``) and re-executes itself. Every process Parley starts
inherits that: the PDF viewer or editor a citation opens (``ui/knowledge/citations.py``),
``xdg-open`` for a link and the browser it launches would load the bundle's libstdc++, GLib,
X11 and OpenSSL instead of their own, and can crash (PyInstaller's docs: "Launching External
Programs from the Frozen Application"). Qt starts those programs itself
(``QDesktopServices.openUrl``, ``QProcess.startDetached``), so the only place to fix it for
all of them is the process environment, here.

- ``LD_LIBRARY_PATH`` goes back to the original value. The dynamic loader reads it only when
  a process starts, so this process keeps loading its own libraries from the bundle.
- ``PYINSTALLER_RESET_ENVIRONMENT=1`` makes every re-run of this executable a fresh start:
  Parley's worker processes (the indexer's ``spawn`` worker, the loaders' forkserver, the
  multiprocessing resource tracker) otherwise trust the inherited environment as the
  bundle's and would start without the bundle's library path. As a fresh start the
  bootloader sets it up again for them. Another PyInstaller app opened from Parley (an editor,
  say) likewise starts as itself instead of as a child of Parley.

PyInstaller runs runtime hooks before the entry script, so this precedes all Parley code.
"""

import os
import sys


def _restore_environment() -> None:
    # Only ELF platforms use LD_LIBRARY_PATH; macOS and Windows bundles rely on rpaths and
    # DLL directories, which children do not inherit.
    if sys.platform in ("win32", "darwin", "cygwin"):
        return
    original = os.environ.pop("LD_LIBRARY_PATH_ORIG", None)
    if original:
        os.environ["LD_LIBRARY_PATH"] = original
    else:
        os.environ.pop("LD_LIBRARY_PATH", None)
    os.environ["PYINSTALLER_RESET_ENVIRONMENT"] = "1"


_restore_environment()
del _restore_environment
