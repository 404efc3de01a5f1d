"""The one Settings object of a modelgate process.

Everything configurable comes from ``MODELGATE_*`` environment variables or an optional TOML
config file (``MODELGATE_CONFIG`` or ``--config``); environment variables win over the file.
Nothing else in the package reads ``os.environ``: the object is built once at the edge (CLI)
and passed down.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = ["Settings", "load_settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MODELGATE_", extra="ignore")

    data_dir: Path = Path("./data")
    database_url: str | None = None
    master_key: str | None = Field(default=None, repr=False)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_base_url: str | None = None
    redis_url: str | None = None
    redis_failure_policy: Literal["open", "closed"] = "open"
    workers: int = Field(default=1, ge=1)

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    upstream_connect_timeout: float = Field(default=10.0, gt=0)
    upstream_read_timeout: float = Field(default=300.0, gt=0)
    upstream_pool_size: int = Field(default=512, ge=1)
    upstream_deny_hosts: list[str] = Field(default_factory=list)
    upstream_allow_hosts: list[str] = Field(default_factory=list)

    snapshot_poll_interval: float = Field(default=1.0, gt=0)
    usage_flush_interval: float = Field(default=0.5, gt=0)
    usage_batch_size: int = Field(default=500, ge=1)
    usage_buffer_max: int = Field(default=100_000, ge=1)

    usage_detail_retention_days: int = Field(default=365, ge=1)
    usage_rollup_retention_days: int = Field(default=60, ge=1)
    retention_interval: float = Field(default=3600.0, gt=0)
    metrics_token: str | None = Field(default=None, repr=False)

    cors_origins: list[str] = Field(default_factory=list)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = False

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        """Accept the URLs people paste (``postgresql://``, ``sqlite:///``) and pick the async driver."""
        if value is None or value == "":
            return None
        if value.startswith("postgres://"):
            value = "postgresql://" + value[len("postgres://") :]
        if value.startswith("postgresql://"):
            return "postgresql+asyncpg://" + value[len("postgresql://") :]
        if value.startswith("sqlite://") and not value.startswith("sqlite+"):
            return "sqlite+aiosqlite://" + value[len("sqlite://") :]
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'modelgate.db').resolve()}"

    @property
    def master_key_file(self) -> Path:
        return self.data_dir / "master.key"

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def base_url(self) -> str:
        """The public base URL clients use; shown in invocation examples."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build Settings: explicit overrides > environment > config file > defaults."""
    from_file: dict[str, Any] = {}
    if config_file is not None:
        with config_file.open("rb") as fh:
            raw = tomllib.load(fh)
        section = raw.get("modelgate", raw)
        from_file = {str(k).replace("-", "_"): v for k, v in section.items()}
    env_only = Settings()
    explicit_env = env_only.model_fields_set
    merged = {k: v for k, v in from_file.items() if k not in explicit_env}
    merged.update({k: getattr(env_only, k) for k in explicit_env})
    merged.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**merged)
