"""One window per person and data folder: a second launch brings the open window forward.

Two windows on one database would each keep their own idea of the open conversation and the
index writer; a person who clicks the launcher twice wants the window they already have.

- The first window takes a lock file in its data folder (``window.lock``, a ``QLockFile``:
  a lock left by a crashed process is detected by its process id and taken over) and then
  listens on a local socket whose name is derived from the user name and the data folder
  (``PARLEY_HOME``), so two people, or one person with two ``PARLEY_HOME`` folders, never
  meet. The socket is restricted to its user (``UserAccessOption``).
- A later launch finds the lock taken, connects, sends ``activate`` and waits for ``ok``;
  it then exits 0 and the first window comes forward (:func:`bring_to_front`).
- ``parley ask`` and the other commands do not take part: they keep working beside the
  window (SQLite in WAL mode, the index under its own writer lock).

Issue 14 item 7; the handshake between two processes is tested in
``tests/ui/test_single_instance.py``.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
import time
from pathlib import Path

from PySide6.QtCore import QLockFile, QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket
from PySide6.QtWidgets import QApplication, QWidget

log = logging.getLogger(__name__)

ACTIVATE = b"activate\n"
"""What a later launch sends."""

ACK = b"ok\n"
"""What the running window answers once it has been asked to come forward."""

LOCK_NAME = "window.lock"
"""The lock file, in the data folder (one window per database)."""


def server_name(data_dir: Path, user: str | None = None) -> str:
    """The local socket's name for this user and data folder (short: Unix paths are limited)."""
    if user is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no user name (a container with an unknown uid)
            user = "unknown"
    key = f"{user}\0{data_dir.expanduser().resolve()}".encode()
    return "parley-" + hashlib.sha256(key).hexdigest()[:20]


class SingleInstance(QObject):
    """The first window's lock and socket, or a later launch's way to reach that window."""

    # ---- Signals
    sig_activation_requested = Signal()
    """Another launch asked this window to come forward."""

    def __init__(self, data_dir: Path, parent: QObject | None = None) -> None:
        """Prepare (nothing is locked or opened yet).

        Args:
            data_dir: Parley's data folder (must exist): the lock lives there.
            parent: Qt parent.
        """
        super().__init__(parent)
        self.name = server_name(data_dir)
        self._lock = QLockFile(str(data_dir / LOCK_NAME))
        # Never stale by age (a window runs for days); a dead owner is still detected.
        self._lock.setStaleLockTime(0)
        self._server: QLocalServer | None = None
        self._clients: set[QLocalSocket] = set()

    # ---- Public API
    def acquire(self) -> bool:
        """Become the one window for this data folder.

        Returns:
            True: this process is the first (it now listens for later launches). False:
            another window holds the lock (call :meth:`activate_running`).
        """
        if not self._lock.tryLock(0):
            if self._lock.error() == QLockFile.LockError.LockFailedError:
                return False
            # The folder is not writable or the lock cannot be made: run anyway (a second
            # window is then possible) rather than refusing to start.
            log.warning(
                "cannot take the window lock (%s); single-window check is off",
                self._lock.error().name,
            )
        # A socket left behind by a crashed window would make listen() fail; we hold the
        # lock, so no live window owns it.
        QLocalServer.removeServer(self.name)
        server = QLocalServer(self)
        server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not server.listen(self.name):
            log.warning("a second launch cannot reach this window: %s", server.errorString())
            return True
        server.newConnection.connect(self._on_new_connection)
        self._server = server
        return True

    def activate_running(self, timeout_s: float = 5.0) -> bool:
        """Ask the running window to come forward; True once it said so.

        Retries until ``timeout_s``: the first window takes its lock a moment before it
        listens.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            sock = QLocalSocket()
            sock.connectToServer(self.name)
            if sock.waitForConnected(500):
                sock.write(ACTIVATE)
                sock.flush()
                answer = b""
                while ACK not in answer and sock.waitForReadyRead(
                    max(1, int((deadline - time.monotonic()) * 1000))
                ):
                    answer += bytes(sock.readAll().data())
                sock.abort()
                if ACK in answer:
                    return True
            else:
                sock.abort()
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def release(self) -> None:
        """Stop listening and give up the lock (the window is closing)."""
        for sock in list(self._clients):
            self._drop(sock)
        if self._server is not None:
            self._server.newConnection.disconnect(self._on_new_connection)
            self._server.close()
            self._server.deleteLater()
            self._server = None
        if self._lock.isLocked():
            self._lock.unlock()

    # ---- Internals
    def _on_new_connection(self) -> None:
        assert self._server is not None
        while (sock := self._server.nextPendingConnection()) is not None:
            self._clients.add(sock)
            sock.readyRead.connect(self._on_ready_read)

    def _on_ready_read(self) -> None:
        sock = self.sender()
        if not isinstance(sock, QLocalSocket) or sock not in self._clients:
            return
        if not sock.canReadLine():
            if sock.bytesAvailable() > 64:  # not one of ours
                self._drop(sock)
            return
        line = bytes(sock.readLine().data())
        if line == ACTIVATE:
            sock.write(ACK)
            sock.flush()
            log.info("another launch asked for this window: bringing it forward")
            self.sig_activation_requested.emit()
        self._drop(sock)

    def _drop(self, sock: QLocalSocket) -> None:
        # Deleted explicitly, never from its own ``disconnected`` signal: a socket destroyed
        # with its server emits that signal from its destructor (a crash seen in the tests).
        self._clients.discard(sock)
        sock.readyRead.disconnect(self._on_ready_read)
        sock.disconnectFromServer()
        sock.deleteLater()


def bring_to_front(window: QWidget) -> None:
    """Show, raise and activate ``window`` (restoring it when minimized).

    Window managers may refuse to move focus to a window the person did not click; the
    taskbar entry then asks for attention instead (``QApplication.alert``).
    """
    if window.isMinimized():
        window.showNormal()
    else:
        window.show()
    window.raise_()
    window.activateWindow()
    QApplication.alert(window, 0)
