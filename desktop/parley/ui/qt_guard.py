"""A process-wide guard against a shiboken6 reference-count bug (see the function).

It patches the interpreter's ``None``/``True``/``False`` singletons, so it lives here, apart
from any widget, and is applied once by the composition root (:func:`parley.ui.app.main`
through ``create_application``) and the UI tests' set-up, never as a side effect of building
a widget.
"""

from __future__ import annotations

import ctypes
import logging
import sys

from PySide6.QtCore import QObject, QPointF, Signal

log = logging.getLogger(__name__)

_NONE_GUARDED = False


class _RefcountProbe(QObject):
    probed = Signal()


def guard_none_refcount() -> bool:
    """Protect the process from reference-counting bugs in shiboken6 6.12.0 on Python 3.11.

    Measured here (PySide6-Essentials 6.12.0, CPython 3.11.7; 6.11.3 is not affected):

    - every call of a Qt method returning ``void`` (``QPainter.translate``,
      ``QTextDocument.setTextWidth``, ``QTimer.setInterval``…) hands back ``None`` without
      a new reference, so ``None``'s reference count drops by one per call;
    - every ``SignalInstance.emit()`` does the same to ``True``.

    CPython aborts ("none_dealloc" / "bool_dealloc: deallocating None/True") once a count
    reaches zero: a bare script dies after ~100 emits, the chat view within a minute of
    streaming. Python 3.12+ made these objects immortal (PEP 683), which hides the bug
    there; on 3.11 we do the same by giving them a huge reference count, once. The probes
    make this a no-op with a fixed shiboken (pinning ``PySide6-Essentials<6.12`` is the
    real fix; this guard keeps a user's environment with 6.12.0 from crashing).

    It is process-wide and idempotent; call it early: ``ui/app.py`` does, right after the
    QApplication exists and before any window, and so does the UI tests' set-up.

    Returns:
        True if a bug was detected and the guard applied (now or before).
    """
    global _NONE_GUARDED
    if _NONE_GUARDED:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    point = QPointF()
    none_before = sys.getrefcount(None)
    for _ in range(8):
        point.setX(1.0)
    none_leaks = sys.getrefcount(None) < none_before
    probe = _RefcountProbe()
    true_before = sys.getrefcount(True)
    for _ in range(8):
        probe.probed.emit()
    true_leaks = sys.getrefcount(True) < true_before
    if not (none_leaks or true_leaks):
        return False
    # ob_refcnt is the first field of every CPython 3.11 object; 2**48 leaked references
    # is ~9 years at a million calls per second.
    for singleton in (None, True, False):
        ctypes.c_ssize_t.from_address(id(singleton)).value += 1 << 48
    _NONE_GUARDED = True
    log.info(
        "applied the shiboken6 reference-count guard (None: %s, True: %s)", none_leaks, true_leaks
    )
    return True
