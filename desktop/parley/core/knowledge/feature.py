"""The documents feature as the core builds it: one :class:`KnowledgeFeature` per front end.

The composition root (:func:`~parley.core.services.build_services`) makes it; making it opens
nothing. It owns everything the rest of the core and the front ends ask of the documents:

- **the rule** (:meth:`KnowledgeFeature.needed_for`): a turn reads the documents when it
  asks for them ("Use my documents", ``--knowledge``), or when its tools are on and folders
  are added (``knowledge_search`` is then among the tools);
- **the index, opened on first use** (:meth:`~KnowledgeFeature.attach`, blocking: chromadb
  and the embedding model take a second or two) and closed again
  (:meth:`~KnowledgeFeature.detach`, before the embedding model or the server changes);
- **grounding**: the chat session grounds each "Use my documents" turn through
  :meth:`~KnowledgeFeature.ground`; while the index is not open the answer comes without
  documents;
- **the tools' backend**: ``knowledge_search`` (:meth:`~KnowledgeFeature.tool_search`, while
  the index is open) and ``read_file``'s parser for PDF, DOCX and HTML
  (:meth:`~KnowledgeFeature.load_document`: one isolated loader process, started on first
  use, stopped by :meth:`~KnowledgeFeature.close`).

Which store the settings describe (the embedding model and, in team mode, a Chroma server)
is :func:`store_config`, shared with the indexing worker the window starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from parley.core.errors import ConfigError

if TYPE_CHECKING:
    from parley.core.knowledge.grounding import Grounding, KnowledgeGrounder
    from parley.core.knowledge.indexer import EmbedderConfig
    from parley.core.knowledge.loaders import IsolatedLoader, LoadedDocument
    from parley.core.knowledge.retrieval import RetrievedChunk
    from parley.core.knowledge.store import KnowledgeStore
    from parley.core.knowledge.vectors import ChromaServer
    from parley.core.paths import Paths
    from parley.core.secrets import Secrets
    from parley.core.settings import Settings, SettingsStore

CHROMA_TOKEN_SECRET = "chroma-server"
"""Keyring entry holding the Chroma server token (team mode)."""


class TurnSwitches(Protocol):
    """The two switches of a turn the rule looks at (``TurnOptions`` has them)."""

    @property
    def use_knowledge(self) -> bool:
        """The "Use my documents" switch."""
        ...

    @property
    def use_tools(self) -> bool:
        """The "Use tools" switch."""
        ...


def store_config(
    settings: Settings, secrets: Secrets | None
) -> tuple[EmbedderConfig, ChromaServer | None]:
    """The embedder and the Chroma server (None: embedded) ``settings`` describe.

    Raises:
        ConfigError: an unknown embedding model.
    """
    from parley.core.knowledge.indexer import EmbedderConfig
    from parley.core.knowledge.vectors import ChromaServer

    ks = settings.knowledge
    api_key = None
    if ks.embedding_model.startswith("openai:") and secrets is not None:
        resolved = secrets.resolve("openai", env_var="OPENAI_API_KEY")
        api_key = resolved.value if resolved else None
    embedder = EmbedderConfig.from_setting(ks.embedding_model, api_key)
    server = None
    if ks.chroma_server is not None:
        token = secrets.resolve(CHROMA_TOKEN_SECRET) if secrets is not None else None
        server = ChromaServer(
            host=ks.chroma_server.host,
            port=ks.chroma_server.port,
            ssl=ks.chroma_server.ssl,
            token=token.value if token else None,
        )
    return embedder, server


def open_store(paths: Paths, settings: Settings, secrets: Secrets | None = None) -> KnowledgeStore:
    """The knowledge store the settings describe (embedded, or a Chroma server).

    Raises:
        ParleyError: the model files, the database or the server cannot be used.
    """
    from parley.core.knowledge.indexer import make_embedder
    from parley.core.knowledge.store import KnowledgeStore

    config, server = store_config(settings, secrets)
    embedder = make_embedder(paths, config)
    paths.ensure()
    return KnowledgeStore(paths, embedder, server=server)


class KnowledgeFeature:
    """The person's documents: the rule, the index (opened on first use), grounding, tools.

    Thread-safe: :meth:`attach`, :meth:`detach` and :meth:`close` block and may run in
    worker threads while turns ground and search through the grounder attached then.

    Args:
        paths: Parley's folders (the index lives there).
        settings: The settings (folders, embedding model, server, retrieval sizes).
        secrets: Keys for OpenAI embeddings and the Chroma server token.
    """

    def __init__(self, paths: Paths, settings: SettingsStore, secrets: Secrets | None) -> None:
        self._paths = paths
        self._settings = settings
        self._secrets = secrets
        self._lock = threading.Lock()
        self._grounder: KnowledgeGrounder | None = None
        self._loader: IsolatedLoader | None = None
        self._closed = False

    # ---- the rule
    def needed_for(self, switches: TurnSwitches) -> bool:
        """Whether a turn with these switches reads the documents (so the index must be open).

        It does when it asks for them, or when its tools are on and folders are added: then
        ``knowledge_search`` is one of its tools.
        """
        if switches.use_knowledge:
            return True
        return switches.use_tools and bool(self._settings.current.knowledge.folders)

    # ---- the index
    @property
    def grounder(self) -> KnowledgeGrounder | None:
        """The retrieval over the open index (None until :meth:`attach`, after :meth:`detach`)."""
        return self._grounder

    @property
    def store(self) -> KnowledgeStore | None:
        """The open index (None while detached)."""
        grounder = self._grounder
        return grounder.retriever.store if grounder is not None else None

    def attach(self, *, warm: bool = False) -> KnowledgeGrounder:
        """Open the index (once; later calls return the same grounder). Blocking.

        Args:
            warm: Also load the embedding model now (the window does, in a worker thread),
                not at the first question.

        Raises:
            ConfigError: the knowledge modules are missing from this build.
            ParleyError: the model files, the database or the server cannot be used.
        """
        with self._lock:
            if self._closed:
                raise ConfigError("Parley is closing; the documents cannot be opened now.")
            grounder = self._grounder
            if grounder is None:
                grounder = self._grounder = self._open()
        if warm:
            ready = getattr(grounder.retriever.store.embedder, "ensure_ready", None)
            if callable(ready):
                ready()
        return grounder

    def _open(self) -> KnowledgeGrounder:
        try:
            from parley.core.knowledge.grounding import KnowledgeGrounder
            from parley.core.knowledge.retrieval import Retriever
        except ImportError:
            raise ConfigError("The knowledge feature is not available in this build.") from None
        s = self._settings.current
        store = open_store(self._paths, s, self._secrets)
        return KnowledgeGrounder(
            Retriever(store),
            k=s.knowledge.retrieval_k,
            token_budget=s.knowledge.source_token_budget,
        )

    def detach(self) -> None:
        """Close the index (turns then go without documents until :meth:`attach`). Blocking."""
        with self._lock:
            grounder, self._grounder = self._grounder, None
        if grounder is not None:
            grounder.close()

    # ---- grounding (the chat session's Grounder)
    async def ground(self, question: str, *, folders: Sequence[str] = ()) -> Grounding | None:
        """Sources for ``question`` from the open index (None while it is not open)."""
        grounder = self._grounder
        if grounder is None:
            return None
        return await grounder.ground(question, folders=folders)

    # ---- the tools' backend
    def tool_search(self) -> Callable[[str, int], list[RetrievedChunk]] | None:
        """``knowledge_search``'s backend over the open index (None: the tool is left out)."""
        grounder = self._grounder
        return grounder.search_for_tool if grounder is not None else None

    def load_document(self, path: Path) -> LoadedDocument:
        """Parse a PDF, DOCX or HTML file for ``read_file`` in the isolated loader process.

        The loader (a worker process with a time and memory limit) starts on first use and is
        reused until :meth:`close`.

        Raises:
            FileSkipped: the file cannot be parsed (or Parley is closing).
        """
        with self._lock:
            loader = self._loader
            if loader is None:
                from parley.core.knowledge.loaders import FileSkipped, IsolatedLoader

                if self._closed:
                    raise FileSkipped("the loader was closed")
                loader = self._loader = IsolatedLoader()
        return loader.load(path)

    def close(self) -> None:
        """Close the index and stop the loader process (on quit)."""
        with self._lock:
            self._closed = True
            loader, self._loader = self._loader, None
        self.detach()
        if loader is not None:
            loader.close()
