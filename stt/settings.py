"""config.json + environment -> frozen, validated settings.

Every key is checked against the dataclass that declares it, so a typo or a wrong type is reported by its
full dotted name (``server.http.port``) instead of surfacing later as a confusing runtime error.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from auth.client_address import parse_networks
from auth.tokens import HASH_PREFIX
from stt.engines.languages import LANGUAGE_CODES

ENGINES = ("faster-whisper", "openai-whisper")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
TOKENS_ENV = "STT_TOKENS"
# Secrets of the jobs settings may come from the environment (a Kubernetes Secret) rather than the config file.
JOBS_ENV = {"STT_JOBS_DATABASE_URL": "database_url", "STT_JOBS_WEBHOOK_SECRET": "webhook_secret"}
MiB = 1024 * 1024
MODEL_NAME_MAX = 200  # a model name in a request is bounded by the same length


class ConfigError(ValueError):
    """A config value is missing, unknown or of the wrong type; the message names the key."""


@dataclasses.dataclass(frozen=True)
class HttpSettings:
    host: str = "0.0.0.0"
    port: int = 8080
    allowed_tokens: tuple[str, ...] = ()
    request_max_size: int = 100 * MiB  # bytes of request body
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    cors_origins: tuple[str, ...] = ()
    # Open connections at most; beyond it a new one gets a 503 and is closed. Well below the common 1,024
    # open-file limit (and lowered at start to leave descriptors free if the process's limit is lower).
    max_connections: int = 512
    trusted_proxies: tuple[str, ...] = ()  # CIDRs whose X-Forwarded-For names the client (see auth/client_address)
    metrics_public: bool = False  # /metrics without a token (default: the same token auth as the API)


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    http: HttpSettings = HttpSettings()


@dataclasses.dataclass(frozen=True)
class AsrSettings:
    engine: str = "faster-whisper"
    model: str = "base"  # "base", "tiny.en" or a path to a model directory / checkpoint
    compute_type: str = "int8"
    beam_size: int = 5
    threads: int = 0  # 0: one per CPU core
    workers: int = 1  # transcriptions run at the same time; more than 1 only pays with spare cores
    # Model replicas (weights shared) kept for live passes and short uploads: they never wait behind a long
    # upload's job, which cannot be interrupted. 0: everything shares the ``workers``.
    reserved_workers: int = 1
    # Live interim passes run on a copy of the model (one replica, loaded by the first interim) whose threads are
    # in Linux's idle scheduling class: a final's decoding never shares the cores with an interim's. false: they
    # run on the model above, at the same priority (no second copy of the weights). faster-whisper on CPU only.
    idle_interims: bool = True
    # Audio a long upload's job decodes at once. Windows of a job share one beam search only when they have the
    # same encoder input, text budget and prompt length (stt/engines/batched_windows.py): two 29.5 s windows of
    # the chapter batched took ~10 % less CPU than one by one, with ~85 MB more peak (beam search keeps the
    # encoder's output per beam); the chapter's own windows never pair, so 30 and 60 cost it the same.
    upload_batch_seconds: float = 60.0
    device: str = "cpu"
    # Languages auto-detection may answer (Whisper codes, e.g. ["en", "de"]); empty: any. A request naming
    # its language is served in it; a request's own list is narrowed to these.
    languages: tuple[str, ...] = ()
    cache_dir: str | None = None  # where assembled / converted weights are kept; None: ~/.cache/stt-server
    # Models a request may name (``model=``): name -> a bundled model ("base", "tiny.en") or a CTranslate2
    # directory. ``model`` above is the default: one of these names, or itself a source registered under its
    # own name (so a config without ``models`` serves one model, as before).
    models: dict[str, str] = dataclasses.field(default_factory=dict)
    model_ttl_seconds: float | None = 300.0  # a model idle this long is unloaded; null: never
    max_loaded_models: int = 2  # models in memory at once (the least recently used idle one makes room)
    pin_default_model: bool = True  # the default model is loaded at start and never unloaded


@dataclasses.dataclass(frozen=True)
class LimitsSettings:
    max_audio_seconds: float = 4 * 3600.0
    max_queue: int = 64  # requests waiting for the engine before new ones get 503
    # Decoded audio held by requests in flight (queued or running), 64 kB per second: 8 h is 1.8 GB.
    max_held_audio_seconds: float = 8 * 3600.0
    # Bytes that requests and streams in flight may hold in large buffers (bodies as read, inflated bodies,
    # decoded audio, windows): over it a new upload gets 503 + Retry-After. 0: a quarter of the machine's
    # memory (RAM, or the container's limit), at least 1 GiB (stt/memory_budget.py).
    max_held_bytes: int = 0
    queue_timeout_seconds: float = 300.0
    shutdown_timeout_seconds: float = 60.0
    max_streams: int = 8
    max_stream_seconds: float = 4 * 3600.0
    stream_idle_seconds: float = 10.0  # a live stream with no audio or KeepAlive for this long is closed
    auth_max_failures: int = 10  # failed auth attempts per address per window before 429
    auth_window_seconds: float = 60.0


@dataclasses.dataclass(frozen=True)
class JobsSettings:
    """Asynchronous jobs (stt/jobs): submitted, transcribed in the background, fetched or called back."""

    dir: str | None = None  # audio and the SQLite database; None (and no database_url): no jobs API (503)
    database_url: str | None = None  # postgresql://...: replicas share one queue; None: SQLite in ``dir``
    max_queued: int = 100  # jobs waiting (queued) before new ones get 503
    max_disk_bytes: int = 10 * 1024 * MiB  # audio and results held for jobs, in all
    max_upload_bytes: int = 1024 * MiB  # one job's request body (uploads' limit: server.http.request_max_size)
    max_audio_seconds: float = 12 * 3600.0  # one job's audio (uploads' limit: limits.max_audio_seconds)
    retention_hours: float = 24.0  # results (and the job record) kept after the job ended
    concurrency: int = 2  # jobs transcribed at once, taking turns window by window (230 MB of audio per hour each)
    # OS nice value (1-19) of the threads that transcribe jobs: a second copy of the default model, loaded by a
    # thread at this priority, runs them, so when a live pass or an upload runs beside a job's window the
    # kernel gives them the cores first (a window in progress cannot be interrupted). 0 with sched_idle off:
    # jobs run on the shared model, at the same OS priority as everything else (no second copy of the weights).
    # Inside a cgroup or an autogroup, the priority counts among that group's threads (the server's) only.
    nice: int = 10
    # Linux only: the copy's threads also run in the SCHED_IDLE scheduling class, so they get a core only when
    # no other thread wants it. A nice value alone leaves them ~9 % of a core under load and, worse, lets them
    # finish their time slice before a live pass's waking thread runs (CTranslate2's threads sleep and wake at
    # every parallel step); an idle-class thread is preempted at once. Jobs then wait for any other work on the
    # machine, not only the server's.
    sched_idle: bool = True
    max_attempts: int = 10  # a job whose server died under it this many times in a row, without finishing a
    # window in between, fails instead of starting again (it may be what takes the server down)
    lease_seconds: float = 60.0  # a replica that stops renewing its job's lease loses it to another replica
    webhook_secret: str | None = None  # HMAC-SHA256 key that signs callbacks
    callback_allowed_hosts: tuple[str, ...] = ()  # "host" or "host:port"; empty: callbacks refused (400)
    callback_max_attempts: int = 6  # deliveries tried at 1, 2, 4, 8... s after a failure
    callback_timeout_seconds: float = 10.0  # one delivery attempt, connection to response


@dataclasses.dataclass(frozen=True)
class LoggingSettings:
    format: str = "text"  # or "json": one object per line, for log shippers
    level: str = "INFO"


@dataclasses.dataclass(frozen=True)
class Settings:
    server: ServerSettings = ServerSettings()
    asr: AsrSettings = AsrSettings()
    limits: LimitsSettings = LimitsSettings()
    jobs: JobsSettings = JobsSettings()
    logging: LoggingSettings = LoggingSettings()

    @property
    def http(self) -> HttpSettings:
        return self.server.http


def load_settings(path: str | Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (JSON) and the environment; raise ConfigError naming the bad key."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    return settings_from_dict(raw, env if env is not None else os.environ)


def settings_from_dict(raw: Any, env: Mapping[str, str] | None = None) -> Settings:
    settings = _build(Settings, raw, "")
    settings = _with_env_tokens(settings, env or {})
    settings = _with_env_jobs(settings, env or {})
    validate(settings)
    return settings


def _with_env_jobs(settings: Settings, env: Mapping[str, str]) -> Settings:
    changes = {key: env[name] for name, key in JOBS_ENV.items() if env.get(name)}
    return dataclasses.replace(settings, jobs=dataclasses.replace(settings.jobs, **changes)) if changes else settings


def _with_env_tokens(settings: Settings, env: Mapping[str, str]) -> Settings:
    extra = tuple(t.strip() for t in env.get(TOKENS_ENV, "").split(",") if t.strip())
    if not extra:
        return settings
    http = dataclasses.replace(settings.http, allowed_tokens=settings.http.allowed_tokens + extra)
    return dataclasses.replace(settings, server=dataclasses.replace(settings.server, http=http))


def _build(cls: type, raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix or 'config'}: expected an object, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(f"{_key(prefix, unknown[0])}: unknown key (known: {', '.join(sorted(names))})")
    values = {name: _coerce(hints[name], raw[name], _key(prefix, name)) for name in names if name in raw}
    return cls(**values)


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, key)
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):  # "X | None"
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(inner, value, key)
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{key}: expected an object of strings")
        return dict(value)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings")
        return tuple(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value


def validate(s: Settings) -> None:
    """ConfigError naming the first bad key; settings_from_dict calls it, and so do command-line overrides."""
    checks: list[tuple[bool, str]] = [
        (0 < s.http.port < 65536, "server.http.port: must be between 1 and 65535"),
        (s.http.request_max_size > 0, "server.http.request_max_size: must be positive (bytes)"),
        (s.http.max_connections >= 1, "server.http.max_connections: must be at least 1"),
        (all(s.http.allowed_tokens), "server.http.allowed_tokens: empty token"),
        ((s.http.ssl_certfile is None) == (s.http.ssl_keyfile is None),
         "server.http.ssl_certfile/ssl_keyfile: set both or neither"),
        (s.asr.engine in ENGINES, f"asr.engine: must be one of {', '.join(ENGINES)}, got {s.asr.engine!r}"),
        (bool(s.asr.model), "asr.model: must not be empty"),
        (1 <= s.asr.beam_size <= 20, "asr.beam_size: must be between 1 and 20"),
        (s.asr.threads >= 0, "asr.threads: must be 0 (all cores) or more"),
        (s.asr.workers >= 1, "asr.workers: must be at least 1"),
        (s.asr.reserved_workers >= 0, "asr.reserved_workers: must be 0 or more"),
        (s.asr.upload_batch_seconds > 0, "asr.upload_batch_seconds: must be more than 0"),
        (all(name and source for name, source in s.asr.models.items()),
         "asr.models: names and sources must not be empty"),
        (all(len(name) <= MODEL_NAME_MAX for name in s.asr.models),
         f"asr.models: names of at most {MODEL_NAME_MAX} characters"),
        (s.asr.model_ttl_seconds is None or s.asr.model_ttl_seconds > 0,
         "asr.model_ttl_seconds: must be more than 0, or null (never unload)"),
        (s.asr.max_loaded_models >= 1, "asr.max_loaded_models: must be at least 1"),
        (all(lang in LANGUAGE_CODES for lang in s.asr.languages),
         f"asr.languages: Whisper language codes only, got {list(s.asr.languages)}"),
        (s.limits.max_audio_seconds > 0, "limits.max_audio_seconds: must be positive"),
        (s.limits.max_queue >= 0, "limits.max_queue: must be 0 or more"),
        (s.limits.max_held_audio_seconds > 0, "limits.max_held_audio_seconds: must be positive"),
        (s.limits.max_held_bytes >= 0, "limits.max_held_bytes: must be 0 (a quarter of the memory) or more"),
        (s.limits.queue_timeout_seconds > 0, "limits.queue_timeout_seconds: must be positive"),
        (s.limits.shutdown_timeout_seconds >= 0, "limits.shutdown_timeout_seconds: must be 0 or more"),
        (s.limits.max_streams >= 0, "limits.max_streams: must be 0 or more"),
        (s.limits.max_stream_seconds > 0, "limits.max_stream_seconds: must be positive"),
        (s.limits.stream_idle_seconds > 0, "limits.stream_idle_seconds: must be positive"),
        (s.limits.auth_max_failures >= 1, "limits.auth_max_failures: must be at least 1"),
        (s.limits.auth_window_seconds > 0, "limits.auth_window_seconds: must be positive"),
        *_jobs_checks(s.jobs),
        (s.logging.format in LOG_FORMATS, f"logging.format: must be one of {', '.join(LOG_FORMATS)}"),
        (s.logging.level.upper() in LOG_LEVELS, f"logging.level: must be one of {', '.join(LOG_LEVELS)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    for token in s.http.allowed_tokens:
        if token.startswith(HASH_PREFIX) and not _is_sha256_hex(token[len(HASH_PREFIX):]):
            raise ConfigError("server.http.allowed_tokens: a 'sha256:' entry needs 64 hex digits")
    try:
        parse_networks(s.http.trusted_proxies)
    except ValueError as exc:
        raise ConfigError(f"server.http.trusted_proxies: {exc}") from exc


def _jobs_checks(j: JobsSettings) -> list[tuple[bool, str]]:
    return [
        (j.database_url is None or j.database_url.startswith(("postgresql://", "postgres://")),
         "jobs.database_url: must start with postgresql://"),
        (j.max_queued >= 1, "jobs.max_queued: must be at least 1"),
        (j.max_disk_bytes > 0, "jobs.max_disk_bytes: must be positive (bytes)"),
        (j.max_upload_bytes > 0, "jobs.max_upload_bytes: must be positive (bytes)"),
        (j.max_audio_seconds > 0, "jobs.max_audio_seconds: must be positive"),
        (j.retention_hours > 0, "jobs.retention_hours: must be positive"),
        (j.concurrency >= 1, "jobs.concurrency: must be at least 1"),
        (0 <= j.nice <= 19, "jobs.nice: must be between 0 (off) and 19"),
        (j.max_attempts >= 1, "jobs.max_attempts: must be at least 1"),
        (j.lease_seconds >= 5, "jobs.lease_seconds: must be at least 5"),
        (1 <= j.callback_max_attempts <= 20, "jobs.callback_max_attempts: must be between 1 and 20"),
        (j.callback_timeout_seconds > 0, "jobs.callback_timeout_seconds: must be positive"),
        (not j.callback_allowed_hosts or bool(j.webhook_secret),
         "jobs.webhook_secret: needed when jobs.callback_allowed_hosts is set (callbacks are always signed)"),
        (all(h and "/" not in h and "@" not in h for h in j.callback_allowed_hosts),
         "jobs.callback_allowed_hosts: entries are host names or host:port"),
    ]


def _is_sha256_hex(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text)
