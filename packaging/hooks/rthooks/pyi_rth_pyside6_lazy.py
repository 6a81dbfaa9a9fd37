"""PySide6 run-time hook, replacing PyInstaller's ``pyi_rth_pyside6`` (see ../rthooks.dat).

It does what PyInstaller's hook does (PyInstaller 6.22: one Qt binding, plugin and QML paths,
the Windows PATH and macOS DYLD_LIBRARY_PATH additions, the embedded ``qt.conf`` that points
Qt at the bundle) with one difference: the ``qt.conf`` is registered right after
``PySide6.QtCore`` is first imported, instead of importing QtCore at start-up to do it.

Why: PyInstaller's hook imports QtCore in every process, which costs ~0.22 s here (Qt Core
and its 32 MB ICU data). Most of Parley's processes never touch Qt: ``parley --version``,
``ask``, ``index``, ``search`` and every worker process (the indexer's ``spawn`` worker, the
loaders' forkserver and the multiprocessing resource tracker re-run this executable). The
window imports QtCore before it creates the QApplication, so Qt still reads the ``qt.conf``
before it looks anything up.

Revisit when upgrading PyInstaller: compare with ``PyInstaller/hooks/rthooks/pyi_rth_pyside6.py``.
"""


def _pyi_rthook() -> None:
    import os
    import sys

    from _pyi_rth_utils import is_macos_app_bundle, prepend_path_to_environment_variable
    from _pyi_rth_utils import qt as qt_rth_utils

    qt_rth_utils.ensure_single_qt_bindings_package("PySide6")

    if sys.platform.startswith("win"):
        pyqt_path = os.path.join(sys._MEIPASS, "PySide6")
    else:
        pyqt_path = os.path.join(sys._MEIPASS, "PySide6", "Qt")

    os.environ["QT_PLUGIN_PATH"] = os.path.join(pyqt_path, "plugins")

    if is_macos_app_bundle:
        # codesign makes PyInstaller split qml/ between Contents/Frameworks and
        # Contents/Resources; Qt must see both (PyInstaller's comment explains).
        pyqt_path_res = os.path.normpath(
            os.path.join(sys._MEIPASS, "..", "Resources", os.path.relpath(pyqt_path, sys._MEIPASS))
        )
        os.environ["QML2_IMPORT_PATH"] = os.pathsep.join(
            [os.path.join(pyqt_path_res, "qml"), os.path.join(pyqt_path, "qml")]
        )
    else:
        os.environ["QML2_IMPORT_PATH"] = os.path.join(pyqt_path, "qml")

    if sys.platform.startswith("win"):
        prepend_path_to_environment_variable(sys._MEIPASS, "PATH")
    if sys.platform == "darwin" and not is_macos_app_bundle:
        prepend_path_to_environment_variable(sys._MEIPASS, "DYLD_LIBRARY_PATH")

    class _QtConfAfterQtCore:
        """Finds nothing itself: wraps QtCore's loader so qt.conf follows its import."""

        def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
            if fullname != "PySide6.QtCore":
                return None
            sys.meta_path.remove(self)  # one shot
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                spec = find(fullname, path, target) if find is not None else None
                if spec is not None:
                    break
            else:
                return None
            inner = spec.loader

            class _Loader:
                def create_module(self, spec):  # type: ignore[no-untyped-def]
                    return inner.create_module(spec)

                def exec_module(self, module):  # type: ignore[no-untyped-def]
                    inner.exec_module(module)
                    module.__loader__ = module.__spec__.loader = inner
                    qt_rth_utils.create_embedded_qt_conf("PySide6", pyqt_path)

            spec.loader = _Loader()
            return spec

    sys.meta_path.insert(0, _QtConfAfterQtCore())


_pyi_rthook()
del _pyi_rthook
