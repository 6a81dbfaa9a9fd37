"""The composition root: ``build_services(paths, settings, secrets) -> Services``.

The CLI and ``ui/app.py`` both call it; nothing else constructs collaborators, and there
are no module-level singletons (STYLE.md §5). Each class gets only what it uses, when it is
constructed: :class:`Services` is frozen and nothing is plugged in afterwards. Features
that open something heavy (the documents' index, the stream worker process) are built
here too and open it on first use.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from parley.core import tokens
from parley.core.agent import Agent
from parley.core.budget import Budget
from parley.core.cache import ResponseCache
from parley.core.chat import ChatSession, TurnOptions
from parley.core.costs import is_local_url, usage_cost
from parley.core.errors import ConfigError, MissingKeyError
from parley.core.knowledge.feature import KnowledgeFeature
from parley.core.metering import Meter
from parley.core.paths import Paths
from parley.core.providers.base import Provider, Timeouts, Usage
from parley.core.providers.catalog import Catalog, load_catalog
from parley.core.providers.registry import AdapterSpec, ProviderRegistry, builtin_registry
from parley.core.providers.resilient import Fallback, ResilientProvider
from parley.core.secrets import ResolvedKey, Secrets
from parley.core.settings import Settings, SettingsStore
from parley.core.store.conversations import ConversationStore
from parley.core.store.ledger import Ledger
from parley.core.tools.approval import FolderAsker

if TYPE_CHECKING:
    from parley.core.providers.worker import StreamWorker
    from parley.core.tools.approval import AskFolder
    from parley.core.tools.registry import ToolRegistry


class ProviderFactory:
    """Builds providers from the catalog, the settings and the keys; caches SDK clients.

    Base URL order: explicit > settings > the vendor's environment variable
    (``OPENAI_BASE_URL`` / ``ANTHROPIC_BASE_URL``, as the SDKs do) > the catalog preset.

    Args:
        catalog: Providers and models.
        settings: Base URLs, timeouts, defaults and the fallback model.
        secrets: API keys.
        environ: The environment for base URLs and keys (default: ``os.environ``).
        registry: The adapter for each protocol (default: the built-in ones).
        stream_worker: Run streams in this worker process once it is started (the window);
            its owner starts it, this factory closes it.
    """

    def __init__(
        self,
        catalog: Catalog,
        settings: SettingsStore,
        secrets: Secrets,
        *,
        environ: Mapping[str, str] | None = None,
        registry: ProviderRegistry | None = None,
        stream_worker: StreamWorker | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.secrets = secrets
        self._environ = environ
        self.registry = registry if registry is not None else builtin_registry()
        """Which adapter speaks which protocol."""
        self.stream_worker = stream_worker
        """Where streams run once it is started (None: always in this process)."""
        self._cache: dict[tuple[str, str | None, str | None], Provider] = {}
        self.overrides: dict[str, dict[str, str]] = {}
        """Per-run overrides (``--base-url``, ``--api-key``): provider id -> field -> value."""

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment consulted for base URLs and keys."""
        return os.environ if self._environ is None else self._environ

    def base_url(self, provider_id: str) -> str | None:
        """Where ``provider_id`` is reached (None: the SDK default)."""
        info = self.catalog.provider(provider_id)
        explicit = self.overrides.get(provider_id, {}).get("base_url")
        if explicit:
            return explicit
        configured = self.settings.current.provider(provider_id).base_url
        if configured:
            return configured
        if info.base_url_env and self.environ.get(info.base_url_env):
            return self.environ[info.base_url_env]
        return info.base_url

    def key(self, provider_id: str) -> ResolvedKey | None:
        """The key for ``provider_id`` and where it came from."""
        info = self.catalog.provider(provider_id)
        explicit = self.overrides.get(provider_id, {}).get("api_key")
        return self.secrets.resolve(provider_id, explicit=explicit, env_var=info.key_env)

    def is_local(self, provider_id: str) -> bool:
        """Whether the provider is a server on this machine (costs nothing)."""
        info = self.catalog.provider(provider_id)
        return info.key_optional and is_local_url(self.base_url(provider_id))

    def timeouts(self) -> Timeouts:
        """Network limits from settings."""
        t = self.settings.current.timeouts
        return Timeouts(connect=t.connect_s, first_byte=t.first_byte_s, idle=t.idle_s)

    def raw(self, provider_id: str) -> Provider:
        """The adapter for ``provider_id`` (cached per base URL and key).

        Raises:
            ConfigError: unknown provider.
            MissingKeyError: the provider needs a key and none is set.
        """
        info = self.catalog.provider(provider_id)
        resolved = self.key(provider_id)
        if resolved is None and not info.key_optional:
            env = f" or the {info.key_env} environment variable" if info.key_env else ""
            raise MissingKeyError(
                f"No API key for {info.label}. Add one in Settings, with "
                f"`parley keys set {provider_id}`{env}."
            )
        base_url = self.base_url(provider_id)
        key = resolved.value if resolved else None
        cache_key = (provider_id, base_url, key)
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        spec = AdapterSpec(
            protocol=info.protocol,
            name=provider_id,
            label=info.label,
            base_url=base_url,
            timeouts=self.timeouts(),
            api_key=key,
        )
        try:
            provider = self.registry.build(spec)
        except ValueError:
            raise ConfigError(
                f"Provider '{provider_id}' has unknown protocol '{info.protocol}'."
            ) from None
        if self.stream_worker is not None:
            from parley.core.providers.worker import WorkerProvider

            provider = WorkerProvider(provider, spec, self.stream_worker)
        self._cache[cache_key] = provider
        return provider

    def warm(self, provider_id: str) -> None:
        """Build the provider's SDK client now (imports the SDK: call it off the GUI thread).

        Raises:
            ConfigError: unknown provider.
            MissingKeyError: the provider needs a key and none is set.
        """
        getattr(self.raw(provider_id), "client", None)

    def resilient(self, provider_id: str, model: str) -> ResilientProvider:
        """The adapter wrapped with retries and the settings' fallback model."""
        primary = self.raw(provider_id)
        s = self.settings.current
        fallback = None
        if s.fallback_model and (s.fallback_model, s.fallback_provider or provider_id) != (
            model,
            provider_id,
        ):
            try:
                fallback = Fallback(self.raw(s.fallback_provider or provider_id), s.fallback_model)
            except (ConfigError, MissingKeyError):
                fallback = None  # an unusable fallback must not block the primary
        return ResilientProvider(primary, fallback=fallback)

    def default_model(self, provider_id: str) -> str:
        """The model to use when none was chosen.

        Raises:
            ConfigError: nothing configured and the catalog has no default.
        """
        s = self.settings.current
        if s.default_model and s.default_provider == provider_id:
            return s.default_model
        configured = s.provider(provider_id).default_model
        if configured:
            return configured
        info = self.catalog.provider(provider_id)
        if info.default_model:
            return info.default_model
        raise ConfigError(
            f"No model chosen for {info.label}. Pass --model or pick one in Settings."
        )

    def cost(self, provider_id: str, model: str, usage: Usage) -> float | None:
        """Price of ``usage``; None when unknown (never a made-up $0)."""
        return usage_cost(
            usage, self.catalog.model(model, provider_id), local=self.is_local(provider_id)
        )

    async def aclose(self) -> None:
        """Close every cached SDK client, and the stream worker if there is one."""
        for p in list(self._cache.values()):
            await p.aclose()
        self._cache.clear()
        if self.stream_worker is not None:
            await self.stream_worker.aclose()


@dataclass(frozen=True)
class Services:
    """Everything a front end needs, built once."""

    paths: Paths
    settings: SettingsStore
    secrets: Secrets
    catalog: Catalog
    conversations: ConversationStore
    providers: ProviderFactory
    chat: ChatSession
    knowledge: KnowledgeFeature
    """The person's documents: the index (opened on first use), grounding, the tools' backend."""
    ledger: Ledger
    """Every request's cost: the cost panel's and ``parley costs``' queries (issue 13)."""
    meter: Meter
    """Token estimates, context limits, prompt and response caching."""
    budget: Budget
    """Spending limits."""
    response_cache: ResponseCache
    """Answers of identical temperature-0 requests."""
    folder_asker: FolderAsker
    """Asks the person before tools read a folder (the window sets its ``handler``)."""

    def turn_options(
        self,
        *,
        provider: str | None = None,
        model: str | None = None,
        system: str | None = None,
        use_tools: bool = False,
        use_knowledge: bool = False,
        folders: tuple[str, ...] = (),
    ) -> TurnOptions:
        """Options for a turn, defaults from settings."""
        s = self.settings.current
        provider = provider or s.default_provider
        self.catalog.provider(provider)  # validates the id
        model = model or self.providers.default_model(provider)
        return TurnOptions(
            provider=provider,
            model=model,
            system=system if system is not None else (s.system_prompt or None),
            temperature=s.temperature,
            top_p=s.top_p,
            max_output_tokens=s.max_output_tokens,
            use_tools=use_tools,
            use_knowledge=use_knowledge,
            folders=(*s.knowledge.folders, *folders),
            approved_folders=folders,  # named for this run (``--folder``): approved
        )

    async def aclose(self) -> None:
        """Close network clients and the database (after the writes already queued)."""
        await self.chat.aclose()
        await self.providers.aclose()
        self.knowledge.close()
        self.response_cache.close()
        self.ledger.close()
        self.conversations.close()


def tool_registry_for(
    options: TurnOptions,
    knowledge: KnowledgeFeature | None = None,
    *,
    settings: SettingsStore | None = None,
    ask_folder: AskFolder | None = None,
) -> ToolRegistry:
    """The tools offered in a turn: calculator, file tools for the added folders, knowledge.

    ``knowledge_search`` is offered while the documents' index is open; ``read_file`` parses
    PDF/DOCX/HTML files in the knowledge feature's isolated loader (a worker process with a
    time and memory limit, started once and stopped on shutdown). The file tools read a
    folder only once the person approved it (:class:`~parley.core.tools.approval.FolderGate`:
    settings' ``tools.approved_folders``, the turn's ``approved_folders``, or ``ask_folder``).
    """
    from parley.core.tools import default_registry, make_file_tools
    from parley.core.tools.approval import FolderGate
    from parley.core.tools.confinement import FolderPolicy
    from parley.core.tools.registry import ToolRegistry

    folders = [Path(f).expanduser() for f in options.folders]
    policy = FolderPolicy([f for f in folders if f.is_dir()])
    load = knowledge.load_document if knowledge is not None else None
    if knowledge is None:
        base = default_registry(policy)
    else:
        base = default_registry(
            policy, knowledge_search=knowledge.tool_search(), load_document=load
        )
    if not policy.roots:
        return base

    def confined(roots: list[Path]) -> ToolRegistry:
        return ToolRegistry(make_file_tools(FolderPolicy(roots), load_document=load))

    remembered = settings.current.tools.approved_folders if settings is not None else []
    return FolderGate(
        base,
        policy,
        confined,
        approved=(*remembered, *options.approved_folders),
        ask=ask_folder,
        remember=(lambda folder: remember_folder(settings, folder)) if settings else None,
    )


def remember_folder(settings: SettingsStore, folder: str) -> None:
    """Store "Always for this folder" in settings (``tools.approved_folders``)."""
    from parley.core.tools.approval import folder_key

    s = settings.current
    key = folder_key(folder)
    if key in s.tools.approved_folders:
        return
    tools = s.tools.model_copy(update={"approved_folders": [*s.tools.approved_folders, key]})
    settings.update(s.model_copy(update={"tools": tools}))


def build_services(
    paths: Paths,
    settings: SettingsStore | Settings | None = None,
    secrets: Secrets | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    registry: ProviderRegistry | None = None,
    stream_worker: bool = False,
) -> Services:
    """Wire Parley's core for one front end.

    Args:
        paths: Parley's folders.
        settings: The settings (default: read from ``paths``).
        secrets: API keys (default: the OS keyring, then the environment).
        environ: The environment for base URLs and keys (default: ``os.environ``).
        registry: The provider adapters (default: the built-in ones).
        stream_worker: Run provider streams in a worker process once its owner starts it
            (``services.providers.stream_worker.start()``): the window does, so that parsing
            streams does not compete with painting.

    Raises:
        StorageError: the data folder or database cannot be used.
        ConfigError: settings or the model catalog are invalid.
    """
    from parley.core.secrets import KeyringSecretStore

    paths.ensure()
    tokens.configure(paths.assets_dir)
    if settings is None:
        settings = SettingsStore(paths.settings_file)
    elif isinstance(settings, Settings):
        settings = SettingsStore(paths.settings_file, settings)
    secrets = secrets or Secrets(KeyringSecretStore(), environ=environ)
    catalog = load_catalog(paths.user_models_file)
    conversations = ConversationStore(paths.db_file)
    registry = registry if registry is not None else builtin_registry()
    worker = None
    if stream_worker:
        from parley.core.providers.worker import StreamWorker

        worker = StreamWorker(registry)
    providers = ProviderFactory(
        catalog, settings, secrets, environ=environ, registry=registry, stream_worker=worker
    )
    knowledge = KnowledgeFeature(paths, settings, secrets)
    store = settings

    asker = FolderAsker()

    def agent_for(options: TurnOptions) -> Agent:
        if not options.use_tools:
            return Agent(None)
        t = store.current.tools
        return Agent(
            tool_registry_for(options, knowledge, settings=store, ask_folder=asker.ask),
            step_cap=t.step_cap,
            max_tool_output_tokens=t.max_output_tokens,
        )

    ledger = Ledger(paths.db_file)
    response_cache = ResponseCache(paths.response_cache_file)
    meter = Meter(
        catalog=catalog,
        settings=settings,
        cost_for=providers.cost,
        is_local=providers.is_local,
        base_url_for=providers.base_url,
        ledger=ledger,
        cache=response_cache,
    )
    budget = Budget(ledger, settings)
    chat = ChatSession(
        conversations,
        provider_for=providers.resilient,
        cost_for=providers.cost,
        agent_for=agent_for,
        grounder=knowledge,
        meter=meter,
        budget=budget,
    )
    return Services(
        paths,
        settings,
        secrets,
        catalog,
        conversations,
        providers,
        chat,
        knowledge,
        ledger,
        meter,
        budget,
        response_cache,
        asker,
    )
