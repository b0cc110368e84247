"""Settings from the environment and `.env`, validated once at start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.webhook_urls import parse_subnets


class ConfigError(Exception):
    """A missing or malformed setting; its message names the variable and says what to do."""


class Settings(BaseSettings):
    """Every setting a Jorge process reads. Names match the environment variables (upper case)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "staging", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    kafka_bootstrap_servers: str | None = Field(default=None, description="host:port[,host:port]")
    kafka_topic_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9._-]*$")
    kafka_consumer_group_prefix: str = Field(default="jorge.", pattern=r"^[A-Za-z0-9._-]*$")
    kafka_enable_idempotence: bool = Field(
        default=True, description="On for Apache Kafka; the embedded broker does not support it."
    )
    kafka_publish_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    kafka_replication_factor: int = Field(default=1, ge=1, le=5)

    database_url: str | None = None
    database_pool_min_size: int = Field(default=1, ge=0, le=100)
    database_pool_size: int = Field(default=20, ge=1, le=200)

    redis_url: str | None = None

    auth_cache_seconds: float = Field(
        default=5.0, ge=0, le=300, description="How long a gateway trusts a verified API key; 0 = never."
    )

    # Gateway: tokens, limits, request size.
    jwt_secret: str | None = Field(
        default=None, min_length=32, description="HMAC key of access tokens; `jorge up` makes one."
    )
    jwt_max_ttl_seconds: int = Field(default=3600, ge=60, le=86_400)
    rate_limit_fail_mode: Literal["open", "closed"] = Field(
        default="open", description="When Redis is unreachable: let requests through, or answer 503."
    )
    max_request_bytes: int = Field(default=256 * 1024, ge=1024, le=50 * 1024 * 1024)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    health_host: str = "127.0.0.1"
    health_port: int = Field(
        default=8081, ge=0, le=65535, description="Worker /health and /metrics; 0 = any free port."
    )

    qualification_stale_after_seconds: int = Field(default=900, ge=30)
    qualification_expires_after_days: int = Field(default=7, ge=1)

    consumer_max_attempts: int = Field(
        default=5, ge=1, le=100, description="Failed tries of one message before it is dead-lettered."
    )
    consumer_retry_backoff_seconds: float = Field(default=0.5, ge=0, le=60)

    # Webhook subscriptions (gateway registration checks; the delivery engine reuses the allowlist).
    webhook_require_https: bool = Field(
        default=False, description="Refuse http:// webhook URLs; set true in production."
    )
    webhook_allowed_subnets: str = Field(
        default="",
        description="Comma-separated CIDRs webhooks may target although not public, e.g. 127.0.0.0/8.",
    )
    webhook_secret_overlap_seconds: int = Field(
        default=86_400, ge=0, le=30 * 86_400, description="How long a rotated-out secret still signs."
    )

    @field_validator("webhook_allowed_subnets")
    @classmethod
    def _subnets_shape(cls, value: str) -> str:
        parse_subnets(value)
        return value

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap_shape(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for server in value.split(","):
            host, _, port = server.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected host:port[,host:port], got {server.strip()!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("must start with postgresql://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    def require(self, *names: str) -> None:
        """Raise ConfigError naming the first of ``names`` that is not set."""
        for name in names:
            if getattr(self, name) in (None, ""):
                raise ConfigError(
                    f"{name.upper()} is not set: give it in the environment or .env, "
                    "or run `jorge up` to start the embedded stack"
                )


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning validation failures into one ConfigError line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise ConfigError(f"{name} is invalid: {first['msg']}") from None
