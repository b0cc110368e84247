"""Settings from the environment and `.env`, validated once at start."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
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
    kafka_linger_ms: int = Field(
        default=5,
        ge=0,
        le=100,
        description=(
            "How long a producer holds a message to send it with others in one produce request "
            "(Apache Kafka's own default since 4.0): fewer requests for the broker and every "
            "process under load, a few ms more per hop when idle."
        ),
    )
    kafka_fetch_max_wait_ms: int = Field(
        default=50,
        ge=1,
        le=500,
        description="Longest a consumer's fetch may wait on the broker when there is nothing new, on "
        "a lead's way. Apache Kafka answers as soon as a record arrives; the embedded broker looks "
        "again at 0, 1/2, 3/4... of the wait, so with aiokafka's 500 ms a record could wait 250 ms "
        "per hop.",
    )
    kafka_background_fetch_max_wait_ms: int = Field(
        default=500,
        ge=1,
        le=2000,
        description="The same bound for subscriptions that no lead's webhook and no waiting HTTP "
        "caller depends on (GHL sync, follow-ups, the matcher's lead recommendations, buyer and "
        "seller webhooks): idle, they poll ten times less often.",
    )
    kafka_commit_interval_ms: int = Field(
        default=200,
        ge=0,
        le=5000,
        description="How often a consumer commits the offsets of the messages it handled, in one "
        "request per consumer; 0 commits after every message. A crash redelivers at most this much "
        "handled work, which every consumer absorbs (jorge_runtime/kafka/offset_commits.py).",
    )
    kafka_replication_factor: int = Field(default=1, ge=1, le=5)
    # Managed clusters (MSK, Confluent Cloud, Aiven) need TLS and usually SASL.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = Field(default=None, description="Never logged.")
    kafka_ssl_cafile: str | None = Field(
        default=None, description="CA bundle to verify the brokers; unset = the system's CAs."
    )

    database_url: str | None = None
    database_pool_min_size: int = Field(default=1, ge=0, le=100)
    database_pool_size: int = Field(default=20, ge=1, le=200)
    database_command_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        le=600,
        description="Longest a database statement may run before it fails (a hung server is an outage).",
    )

    redis_url: str | None = None

    auth_cache_seconds: float = Field(
        default=5.0, ge=0, le=300, description="How long a gateway trusts a verified API key; 0 = never."
    )

    auth_negative_cache_seconds: float = Field(
        default=2.0, ge=0, le=60, description="How long a gateway remembers an unknown API key as unknown."
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
    token_requests_per_minute_per_ip: int = Field(
        default=30, ge=1, description="POST /v1/auth/token attempts per client IP per minute."
    )
    token_requests_per_minute_per_key: int = Field(
        default=10, ge=1, description="POST /v1/auth/token attempts per API key (valid or not) per minute."
    )
    webhook_max_endpoints_per_organization: int = Field(
        default=20, ge=1, le=1000, description="Webhook endpoints an organisation may register."
    )
    idempotency_key_ttl_hours: int = Field(
        default=24, ge=1, le=24 * 30, description="How long an Idempotency-Key's first answer is replayed."
    )
    idempotency_wait_seconds: float = Field(
        default=2.0,
        ge=0,
        le=30,
        description="How long a retry waits for its key's request in progress (then 409).",
    )

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    admin_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Gateway port of /metrics and /health/detailed (and the probes), which the API "
        "port then answers 404; unset: the API port serves them (local use only).",
    )
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

    # Webhook delivery (crm_sync's delivery engine, services/crm_sync/webhook_delivery/).
    webhook_attempt_timeout_seconds: float = Field(
        default=15.0, gt=0, le=60, description="Whole-attempt limit: connect, send and read the answer."
    )
    webhook_connect_timeout_seconds: float = Field(default=5.0, gt=0, le=30, description="TCP+TLS connect.")
    webhook_retry_schedule_seconds: str = Field(
        default="5,300,1800,7200,18000,36000,36000",
        pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?)*\s*$",
        description="Delays before each retry after the first, immediate attempt; its length is the "
        "number of retries.",
    )
    webhook_retry_jitter: float = Field(
        default=0.2, ge=0, le=0.5, description="Each delay is scaled by a random factor in 1 ± this."
    )
    webhook_throttled_min_delay_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description="Least wait after a timeout, 429 or 503 (Retry-After may ask more).",
    )
    webhook_retry_after_max_seconds: int = Field(
        default=86_400, ge=0, le=7 * 86_400, description="Longest Retry-After honoured."
    )
    webhook_disable_after_seconds: int = Field(
        default=5 * 86_400, ge=1, description="An endpoint failing without a success this long is disabled."
    )
    webhook_max_payload_bytes: int = Field(
        default=20 * 1024, ge=1024, le=1024 * 1024, description="Bigger payloads keep only their ids."
    )
    webhook_dispatch_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often a dispatcher looks for due retries."
    )
    webhook_max_in_flight: int = Field(
        default=200, ge=1, le=5000, description="Concurrent webhook requests per crm_sync process."
    )
    webhook_lease_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        le=600,
        description="A claimed delivery is retried by any replica this long after its attempt timeout "
        "if the claimer died.",
    )

    # Claude qualifier and feature flags. Without ANTHROPIC_API_KEY the rules engine
    # runs and nothing below changes behaviour. Flags are read once at start.
    anthropic_api_key: SecretStr | None = Field(
        default=None, description="Turns the Claude qualifier on; never logged."
    )
    anthropic_base_url: str | None = Field(
        default=None, description="Messages API base URL; tests point it at a local fake server."
    )
    claude_model: str = Field(
        default="claude-sonnet-4-6", description="Qualifier model (the large one under cost-aware routing)."
    )
    claude_small_model: str = Field(
        default="claude-haiku-4-5", description="Model for short, clear messages under cost-aware routing."
    )
    claude_timeout: float = Field(
        default=30.0, gt=0, le=600, description="Seconds one lead may spend on Claude, retries included."
    )
    claude_max_concurrency: int = Field(
        default=4, ge=1, le=256, description="Claude calls in flight per process; further leads wait."
    )
    claude_max_attempts: int = Field(
        default=4, ge=1, le=10, description="Tries of one call answered 429/529 before the rules decide."
    )
    claude_max_tokens: int = Field(default=1024, ge=256, le=8192, description="Output cap per call.")
    claude_prompt_cache_ttl: Literal["5m", "1h"] = Field(
        default="5m", description="Life of the cached prompt prefix (instructions, tool, examples)."
    )
    enable_progressive_skills: bool = Field(
        default=False, description="Load only the prompt skill sections a lead needs."
    )
    enable_agent_mesh: bool = Field(
        default=False, description="Route each lead to a model by AGENT_MESH_ROUTING."
    )
    agent_mesh_routing: Literal["cost_aware", "fixed"] = Field(
        default="cost_aware", description="cost_aware: cheapest model able to handle the lead."
    )
    enable_mcp_integration: bool = Field(
        default=False, description="Allow `jorge mcp`: read tools for external agents (experimental)."
    )
    log_feature_usage: bool = Field(default=False, description="Log each use of a feature flag.")
    track_token_savings: bool = Field(
        default=False, description="Measure and export tokens saved by progressive skills."
    )

    # GoHighLevel sync (crm_sync). Without GHL_TOKEN, `jorge up` runs the GHL sandbox.
    ghl_base_url: str = Field(
        default="https://services.leadconnectorhq.com", description="GHL API v2 base URL (or the sandbox's)."
    )
    ghl_token: SecretStr | None = Field(
        default=None,
        description="Private Integration Token of GHL_ORGANIZATION's location (only that organisation's); "
        "never logged.",
    )
    ghl_location_id: str | None = Field(default=None, description="GHL_ORGANIZATION's GHL location.")
    ghl_organization: str | None = Field(
        default=None,
        description="The one organisation (id or name) GHL_TOKEN/GHL_LOCATION_ID apply to when it has no "
        "credentials of its own; unset: they apply to none.",
    )
    ghl_client_id: str | None = Field(
        default=None, description="The GHL Marketplace app's OAuth client id (refreshes OAuth access tokens)."
    )
    ghl_client_secret: SecretStr | None = Field(
        default=None, description="The GHL Marketplace app's OAuth client secret; never logged."
    )
    ghl_token_refresh_margin_seconds: float = Field(
        default=600,
        ge=1,
        le=43_200,
        description="OAuth access tokens are refreshed this long before they expire (GHL's last a day).",
    )
    crm_waiting_check_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How often crm_sync looks for credentials of organisations whose events wait for them.",
    )
    ghl_pipeline_id: str | None = Field(
        default=None, description="Pipeline of hot leads' opportunities; unset: no opportunities."
    )
    ghl_pipeline_stage_id: str | None = Field(default=None, description="Stage of new opportunities.")
    ghl_custom_fields: str = Field(
        default="",
        description="Qualification fields written to GHL custom fields, as name=fieldKeyOrId pairs "
        "separated by commas, e.g. timeline=contact.timeline,budget_max=contact.budget.",
    )
    ghl_timeout_seconds: float = Field(default=15.0, gt=0, le=120, description="One GHL call, end to end.")
    ghl_budget_burst: int = Field(
        default=100, ge=1, le=100_000, description="Requests per window until GHL's headers say otherwise."
    )
    ghl_budget_interval_ms: int = Field(
        default=10_000, ge=100, le=3_600_000, description="Window length until GHL's headers say otherwise."
    )
    ghl_budget_daily: int = Field(
        default=200_000, ge=1, description="Requests per day until GHL's headers say otherwise."
    )
    ghl_budget_margin_ms: int = Field(
        default=250, ge=0, le=60_000, description="Added to each window so network jitter never causes a 429."
    )
    ghl_budget_daily_probe_ms: int = Field(
        default=300_000,
        ge=1_000,
        le=86_400_000,
        description="When GHL says a location's daily budget is spent without saying when it resets, "
        "one request probes it this often (or at the next UTC midnight, if sooner).",
    )
    ghl_budget_max_wait_ms: int = Field(
        default=1_000,
        ge=0,
        le=60_000,
        description="Longest wait for a location's GHL budget inside a handler; a longer one parks the "
        "event on the delay topics (not counted as an attempt) so other organisations go on.",
    )
    crm_retry_delays_seconds: str = Field(
        default="10,60,600,3600,21600",
        pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?){4}\s*$",
        description="Delay of each of the five retry topics; later retries reuse the last.",
    )
    crm_max_attempts: int = Field(
        default=12, ge=1, le=1000, description="Tries of one CRM write before it is dead-lettered."
    )
    # Follow-up cadences (crm_sync, services/crm_sync/follow_ups/; docs/FOLLOW_UPS.md).
    follow_up_cadence_days: str = Field(
        default="3,7,30",
        pattern=r"^\s*\d+(\.\d+)?(\s*,\s*\d+(\.\d+)?){0,19}\s*$",
        description="Days after qualification of each follow-up step, for organisations without their own.",
    )
    follow_up_day_seconds: float = Field(
        default=86_400,
        gt=0,
        le=86_400,
        description="Length of a follow-up day in seconds: 86400 in production; tests make days pass in "
        "seconds. Quiet hours apply only to real days.",
    )
    follow_up_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often each crm_sync replica looks for due follow-up steps.",
    )
    follow_up_lease_seconds: float = Field(
        default=120,
        gt=0,
        le=3600,
        description="How long a claimed step stays a replica's before another takes it.",
    )
    ghl_webhook_public_key: str | None = Field(
        default=None,
        description="PEM public key verifying GHL's `x-wh-signature`; unset: the key GHL publishes "
        "(WebhookAuthentication.md). Tests give the sandbox's.",
    )
    ghl_webhook_tolerance_seconds: int = Field(
        default=300,
        ge=10,
        le=3600,
        description="Oldest (or furthest ahead) GHL webhook `timestamp` accepted.",
    )
    # crm_sync credentials at rest: `jorge up` keeps one in .jorge/crm_credentials_key.
    crm_credentials_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) encrypting crm_credentials tokens, comma-separated: the first "
        "encrypts, all decrypt (rotation). Never logged.",
    )

    # Error reporting: Sentry (docs/MONITORING.md). Unset DSN: nothing is sent anywhere.
    sentry_dsn: SecretStr | None = Field(default=None, description="Sentry project DSN; never logged.")
    sentry_release: str | None = Field(
        default=None, description="Release tag of errors; default jorge-platform@<installed version>."
    )
    sentry_traces_sample_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of requests also sent to Sentry as performance traces."
    )

    # Observability: metrics, traces, consumer lag. See docs/MONITORING.md.
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector base URL (spans go to <url>/v1/traces); unset: no tracing at all.",
    )
    otel_service_name: str | None = Field(
        default=None, description="service.name of this process's spans; default jorge-<service>."
    )
    metrics_enabled: bool = Field(
        default=True, description="Record HTTP and Kafka metrics; false only to measure their cost."
    )
    prometheus_multiproc_dir: str | None = Field(
        default=None,
        description="Directory shared by the gateway's uvicorn workers so /metrics adds them up; "
        "`jorge gateway --workers N` makes a temporary one when unset.",
    )
    kafka_lag_interval_seconds: float = Field(
        default=15.0, ge=0, le=3600, description="How often the gateway measures consumer lag; 0 = never."
    )
    metrics_refresh_seconds: float = Field(
        default=5.0, gt=0, le=300, description="How often each process samples its database pool gauges."
    )

    # Retention and side-consumer readiness (operations). See docs/OPERATIONS.md. The ledger and
    # webhook limits also deduplicate redelivered Kafka events: keep them above Kafka's retention.
    retention_ledger_days: int = Field(
        default=14, ge=8, le=3650, description="Consumers' inbox and published outbox rows kept this long."
    )
    retention_webhook_days: int = Field(
        default=30,
        ge=8,
        le=3650,
        description="Finished webhook deliveries (and attempts, then their messages) kept this long.",
    )
    retention_crm_steps_days: int = Field(
        default=30, ge=8, le=3650, description="crm_sync_steps kept this long (an open dead letter's stay)."
    )
    retention_dead_letters_days: int = Field(
        default=30, ge=1, le=3650, description="Replayed crm dead letters kept this long after their replay."
    )
    retention_batch_size: int = Field(
        default=5000, ge=100, le=100_000, description="Rows deleted per statement by the purge."
    )
    kafka_consumer_concurrency: int = Field(
        default=3,
        ge=1,
        le=6,
        description=(
            "Kafka consumers per qualifier process: partitions handled in parallel, each still in "
            "order; its handler mostly waits on PostgreSQL and Kafka round trips, not on the CPU."
        ),
    )
    crm_sync_role: Literal["all", "ghl", "webhooks"] = Field(
        default="all",
        description=(
            "Which half of crm_sync this process runs: the GHL sync, the webhook engine, or both "
            "in one process (small installations); `jorge up` and Kubernetes run one process per half."
        ),
    )
    retention_interval_seconds: float = Field(
        default=3600, ge=0, le=7 * 86_400, description="How often crm_sync runs the purge; 0 = never."
    )
    health_consumer_start_grace_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="A worker's side consumers may take this long to start before readiness fails.",
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

    @model_validator(mode="after")
    def _sasl_credentials(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError("KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD are required for SASL")
        return self

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
