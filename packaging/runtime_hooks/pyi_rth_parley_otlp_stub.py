"""Runtime hook: a stand-in for OpenTelemetry's gRPC span exporter, which the bundle leaves out.

``chromadb.telemetry.opentelemetry`` imports ``OTLPSpanExporter`` from
``opentelemetry.exporter.otlp.proto.grpc.trace_exporter`` when chromadb is imported, but
builds one only when its ``chroma_otel_collection_endpoint`` setting is set, which Parley
never does. That module pulls in gRPC (17.7 MB) and protobuf, so parley.spec excludes them
and this hook answers the import with a module whose ``OTLPSpanExporter`` says plainly
that tracing export is not part of this build, should anything ever build one.

The finder sits at the end of ``sys.meta_path``: the real module, if a build includes it,
still wins.
"""

import importlib.abc
import importlib.machinery
import sys
import types

_PACKAGE = "opentelemetry.exporter.otlp.proto.grpc"
_MODULE = _PACKAGE + ".trace_exporter"


class OTLPSpanExporter:
    """Refuses to be built: Parley's bundle has no gRPC."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError(
            "OpenTelemetry export over gRPC is not part of Parley's packaged app "
            "(unset chroma_otel_collection_endpoint)"
        )


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name in (_PACKAGE, _MODULE) or _PACKAGE.startswith(name + "."):
            return importlib.machinery.ModuleSpec(name, self, is_package=name != _MODULE)
        return None

    def create_module(self, spec):
        return types.ModuleType(spec.name)

    def exec_module(self, module):
        if module.__name__ != _MODULE:
            module.__path__ = []
        else:
            module.OTLPSpanExporter = OTLPSpanExporter


sys.meta_path.append(_StubFinder())
