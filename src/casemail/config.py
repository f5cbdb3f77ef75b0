"""Typed settings, loaded in one place.

Sources, strongest first: values passed to ``load_settings`` (tests, the
command line), ``CASEMAIL_*`` environment variables (nested with ``__``, e.g.
``CASEMAIL_RELAY__HOST``), the TOML file (``--config`` or ``CASEMAIL_CONFIG``,
else ``./casemail.toml`` when present), then the defaults below.

Every setting is described once, in its ``Field``; ``casemail config
--example`` prints them all as a commented TOML file.
"""

from __future__ import annotations

import contextvars
import logging
import os
import secrets
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from casemail.errors import ConfigError

log = logging.getLogger(__name__)

_toml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar(
    "casemail_toml_path", default=None
)


class ListenerSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address the SMTP listener binds.")
    port: int = Field(2525, description="SMTP port (0 picks a free one).")
    lmtp_port: int | None = Field(
        None, description="LMTP port over TCP; unset means no TCP LMTP listener."
    )
    lmtp_socket: Path | None = Field(
        None, description="Path of an LMTP unix socket; unset means none."
    )
    hostname: str = Field(
        "casemail.local", description="Name the listener gives in its greeting."
    )
    max_message_size: int = Field(
        30 * 1024 * 1024,
        description="Largest message accepted, in bytes (advertised with SIZE).",
    )
    max_recipients: int = Field(50, description="Recipients per message.")
    max_invalid_recipients: int = Field(
        20, ge=1,
        description="Refused recipients one session may try before it is "
        "closed with 421 (slows down guessing reply addresses).",
    )
    max_line_length: int = Field(
        10_000, description="Longest command or data line, in bytes."
    )
    max_header_size: int = Field(
        256 * 1024, description="Largest header section, in bytes."
    )
    timeout: float = Field(
        300.0, description="Seconds a silent session is kept (RFC 5321 4.5.3.2)."
    )
    workers: int = Field(
        1, ge=0,
        description="Processes that take mail on the same sockets, for a "
        "machine with several cores (0: one per core). The first also "
        "delivers and sweeps; on SQLite they take turns to write. The "
        "connection limits below count per worker.",
    )
    max_connections: int = Field(200, description="Concurrent sessions overall.")
    max_connections_per_client: int = Field(
        20, description="Concurrent sessions from one client address."
    )
    tls_cert: Path | None = Field(
        None, description="Certificate (PEM) for STARTTLS; unset means no TLS."
    )
    tls_key: Path | None = Field(None, description="Private key for tls_cert.")
    auth_users: dict[str, str] = Field(
        default_factory=dict,
        description="user = password pairs for SMTP AUTH (only offered over TLS).",
    )


class RelaySettings(BaseModel):
    host: str = Field("127.0.0.1", description="Outbound SMTP relay host.")
    port: int = Field(2526, description="Outbound SMTP relay port.")
    security: Literal["none", "starttls", "tls"] = Field(
        "none", description="none, starttls or tls (implicit TLS)."
    )
    username: str | None = Field(None, description="Relay login, if it needs one.")
    password: str | None = Field(None, description="Relay password.")
    timeout: float = Field(30.0, description="Seconds per relay operation.")
    retry_deadline: float = Field(
        3 * 24 * 3600.0,
        description="Seconds after queueing that temporary failures are retried.",
    )
    retry_base: float = Field(
        30.0, description="First retry delay in seconds; doubles each attempt."
    )
    retry_max: float = Field(3600.0, description="Longest delay between retries.")
    batch_size: int = Field(50, description="Mails one worker pass claims.")
    connections: int = Field(
        2, ge=1, le=32,
        description="Relay connections 'serve' keeps open in parallel.")
    poll_interval: float = Field(
        1.0, description="Seconds the worker waits when the outbox is empty."
    )


class BudgetSettings(BaseModel):
    per_case_recipient: int = Field(
        10,
        description="Automated mails to one recipient about one case per hour.",
    )
    per_recipient: int = Field(
        200,
        description="Automated mails to one recipient overall per hour. "
        "A merchant's team address gets a notification for every reply in "
        "every case, so this is set for a busy store, not for a loop "
        "(the per-case limit stops those).",
    )
    window: float = Field(3600.0, description="Length of the budget window, s.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CASEMAIL_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Field(
        Path("var"), description="Where the database, files and secret live."
    )
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; empty means SQLite at <data_dir>/casemail.db.",
    )
    reply_domain: str = Field(
        "reply.example.test", description="Domain of every reply address."
    )
    reply_local_part: str = Field(
        "case", description="Local part before the '+token' of reply addresses."
    )
    bounce_local_part: str = Field(
        "bounce", description="Local part of our per-message envelope senders."
    )
    signing_keys: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "version = secret. The highest version signs; every listed one "
            "still verifies, so old reply addresses survive a rotation."
        ),
    )
    platform_name: str = Field(
        "Example Platform", description="Name shown on platform staff mail."
    )
    notify_from: str = Field(
        "",
        description="From address of notifications; empty means "
        "notifications@<reply_domain>.",
    )
    templates_dir: Path | None = Field(
        None, description="Overrides the bundled templates/ folder."
    )
    sweep_interval: float = Field(
        300.0, description="Seconds between auto-close sweeps in 'serve'."
    )
    max_attachment_size: int = Field(
        20 * 1024 * 1024, description="Largest single attachment kept, bytes."
    )
    max_attachments_total: int = Field(
        25 * 1024 * 1024, description="Largest sum of attachments per message."
    )
    max_processing_attempts: int = Field(
        5, description="Times a quarantined mail is retried before a person looks."
    )
    log_level: str = Field("INFO", description="DEBUG, INFO, WARNING or ERROR.")
    listener: ListenerSettings = Field(default_factory=ListenerSettings)
    relay: RelaySettings = Field(default_factory=RelaySettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    # -- derived values ----------------------------------------------------

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir.resolve() / 'casemail.db'}"

    @property
    def from_address(self) -> str:
        return self.notify_from or f"notifications@{self.reply_domain}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Read settings from file, environment and ``overrides``; check them."""
    if path is None:
        path = os.environ.get("CASEMAIL_CONFIG") or None
    if path is None and Path("casemail.toml").exists():
        path = "casemail.toml"
    if path is not None and not Path(path).exists():
        raise ConfigError(f"configuration file {path} does not exist")

    token = _toml_path.set(Path(path) if path is not None else None)
    try:
        settings = Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(_problem(e, path) for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from exc
    except SettingsError as exc:
        # The only one pydantic-settings raises itself: a CASEMAIL_ value
        # for a table that is not JSON.
        raise ConfigError(
            f"invalid configuration: {exc}; a CASEMAIL_ variable for a "
            "table is JSON, like CASEMAIL_SIGNING_KEYS='{\"1\": \"secret\"}'"
        ) from exc
    except ValueError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc
    finally:
        _toml_path.reset(token)
    _check_keys(settings)
    return settings


def _problem(error: Any, path: Path | str | None) -> str:
    """One validation error in words: the setting, where it may be set,
    what is wrong and the value given."""
    name = ".".join(str(part) for part in error["loc"])
    variable = "CASEMAIL_" + "__".join(
        str(part) for part in error["loc"]).upper()
    where = f"{path} or {variable}" if path else variable
    given = error.get("input")
    shown = f" (got {given!r})" if isinstance(given, str | int | float) else ""
    if error["type"] == "extra_forbidden":
        return (f"{name} (in {where}): not a setting casemail knows; "
                "'casemail config --example' lists them")
    return f"{name} (in {where}): {error['msg']}{shown}"


def ensure_signing_keys(settings: Settings) -> Settings:
    """Give a demo install a signing key, stored under the data directory.

    A real installation sets ``signing_keys``; without them every reply
    address would change at each start, so we keep a generated one on disk
    and say so loudly.
    """
    if settings.signing_keys:
        return settings
    key_file = settings.data_dir / "signing.key"
    if key_file.exists():
        secret = key_file.read_text().strip()
    else:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(32)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secret + "\n")
    log.warning(
        "no signing_keys configured: using the generated key in %s; "
        "set CASEMAIL_SIGNING_KEYS for a real installation", key_file
    )
    return settings.model_copy(update={"signing_keys": {"1": secret}})


def warn_unsafe(settings: Settings) -> None:
    """Warn about unsafe combinations, once the log level is set (the
    command line calls this; ``load_settings`` only reads)."""
    lst = settings.listener
    if lst.auth_users and lst.tls_cert is None:
        log.warning("SMTP AUTH users are configured but no TLS certificate: "
                    "AUTH will not be offered")
    if lst.host not in ("127.0.0.1", "::1", "localhost") and not lst.tls_cert:
        log.warning("listener on %s without STARTTLS", lst.host)


def _check_keys(settings: Settings) -> None:
    for version, key in settings.signing_keys.items():
        if not version.isdigit():
            raise ConfigError(f"signing key version {version!r} is not a number")
        if len(key) < 16:
            raise ConfigError(f"signing key {version} is shorter than 16 characters")


def example_toml() -> str:
    """Every setting with its description, as a commented TOML file."""
    lines = ["# casemail configuration; every value shown is the default.", ""]
    lines += _model_lines(Settings, "")
    return "\n".join(lines) + "\n"


def _model_lines(model: type[BaseModel], section: str) -> list[str]:
    lines: list[str] = []
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            nested.append((name, ann))
            continue
        default = field.get_default(call_default_factory=True)
        lines.append(f"# {field.description}")
        lines.append(f"# {name} = {_toml_value(default)}")
        lines.append("")
    for name, sub in nested:
        lines.append(f"[{section + name}]")
        lines += _model_lines(sub, section + name + ".")
    return lines


def _toml_value(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, dict):
        return "{}" if not value else repr(value)
    return '"' + str(value) + '"'
