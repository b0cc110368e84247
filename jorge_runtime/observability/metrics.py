"""Every Prometheus metric a Jorge process exports, defined once so names never drift.

Names follow the client's monitoring plan (``jorge_api_*``, ``jorge_cache_*``,
``jorge_db_pool_*``) and docs/MONITORING.md explains each one. Labels are bounded sets
(route templates, status codes, service names, event types, outcome words, GHL location
ids) and never carry lead ids, phones or emails.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets sized for an API whose p95 target is 200 ms and alert is 300 ms.
API_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)

# --- HTTP API (gateway) -------------------------------------------------------------------
API_REQUESTS = Counter(
    "jorge_api_requests_total", "HTTP requests answered by the gateway.", ["method", "route", "status"]
)
API_ERRORS = Counter(
    "jorge_api_errors_total",
    "HTTP requests answered with a 5xx, or a 4xx other than auth and rate limits.",
    ["method", "route", "status", "error"],
)
API_DURATION = Histogram(
    "jorge_api_duration_seconds",
    "Time from request received to response sent, by route template.",
    ["method", "route", "status"],
    buckets=API_BUCKETS,
)

# --- Caches ---------------------------------------------------------------------------------
CACHE_HITS = Counter("jorge_cache_hits_total", "Cache lookups answered from the cache.", ["cache"])
CACHE_MISSES = Counter("jorge_cache_misses_total", "Cache lookups that had to compute or fetch.", ["cache"])

# --- Database -------------------------------------------------------------------------------
DB_POOL_ACTIVE = Gauge(
    "jorge_db_pool_active_connections",
    "PostgreSQL connections currently checked out of the pool.",
    ["service"],
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "jorge_db_pool_max_connections",
    "Size limit of the PostgreSQL pool.",
    ["service"],
    multiprocess_mode="livesum",
)
DB_QUERY_DURATION = Histogram(
    "jorge_db_query_duration_seconds",
    "Time spent in one database unit of work (a transaction or a query), by operation.",
    ["service", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

# --- Business -------------------------------------------------------------------------------
LEADS_QUALIFIED = Counter(
    "jorge_leads_qualified_total", "Qualifications completed.", ["engine", "intent", "temperature"]
)
BUYERS_MATCHED = Counter("jorge_buyers_matched_total", "Buyer match sessions completed.", ["outcome"])
SELLERS_ANALYZED = Counter("jorge_sellers_analyzed_total", "Seller analyses completed.", ["outcome"])

# --- Consumers ------------------------------------------------------------------------------
MESSAGES_PROCESSED = Counter(
    "jorge_messages_processed_total",
    "Kafka messages handled by a worker, by outcome (ok, retried, dead_lettered, duplicate).",
    ["service", "topic", "outcome"],
)
DEAD_LETTERED = Counter(
    "jorge_dead_lettered_total", "Messages sent to a dead-letter topic.", ["service", "reason"]
)

# --- GoHighLevel ----------------------------------------------------------------------------
GHL_REQUESTS = Counter(
    "jorge_ghl_requests_total", "Requests sent to GoHighLevel, by call and status.", ["operation", "status"]
)
GHL_RATE_LIMITED = Counter("jorge_ghl_429_total", "GoHighLevel 429 answers.", ["location"])
GHL_BUDGET_REMAINING = Gauge(
    "jorge_ghl_budget_remaining",
    "Requests left in the shared GHL budget per location and window (burst, daily).",
    ["location", "window"],
    multiprocess_mode="livemin",
)
GHL_BUDGET_STALE_GRANTS = Counter(
    "jorge_ghl_budget_stale_grants_total",
    "GHL budget grants given up because the grant came back later than half the margin.",
)
CRM_WAITING_FOR_CREDENTIALS = Gauge(
    "jorge_crm_events_waiting_for_credentials",
    "CRM events kept for organisations without GHL credentials (synced once they have some).",
    multiprocess_mode="livemax",
)
GHL_REQUEST_DURATION = Histogram(
    "jorge_ghl_request_duration_seconds", "GoHighLevel call latency.", ["operation"], buckets=API_BUCKETS
)

# --- Follow-up cadences (crm_sync) ------------------------------------------------------------
FOLLOW_UP_STEPS = Counter(
    "jorge_follow_up_steps_total",
    "Follow-up steps finished, by outcome: done, skipped (too late), failed.",
    ["outcome"],
)
FOLLOW_UP_STOPPED = Counter(
    "jorge_follow_up_plans_stopped_total",
    "Follow-up plans ended before their last step, by reason (replied, booked, won, lost, "
    "not_interested, opted_out, cancelled).",
    ["reason"],
)
FOLLOW_UP_OVERDUE = Gauge(
    "jorge_follow_up_steps_overdue",
    "Pending steps of active plans due for longer than the claim interval plus a lease.",
    multiprocess_mode="livemax",
)

# --- Webhooks -------------------------------------------------------------------------------
WEBHOOK_ATTEMPTS = Counter(
    "jorge_webhook_attempts_total",
    "Webhook delivery attempts, by event type and outcome.",
    ["event", "outcome"],
)
WEBHOOK_FAILURES = Counter(
    "jorge_webhook_failures_total", "Webhook attempts that did not get a 2xx.", ["event", "reason"]
)
WEBHOOK_DURATION = Histogram(
    "jorge_webhook_attempt_duration_seconds", "Webhook request latency.", ["event"], buckets=API_BUCKETS
)

# --- Claude ---------------------------------------------------------------------------------
CLAUDE_REQUESTS = Counter(
    "jorge_claude_requests_total", "Calls to the Anthropic Messages API.", ["model", "outcome"]
)
CLAUDE_TOKENS = Counter(
    "jorge_claude_tokens_total",
    "Tokens used, by kind (input, output, cache_read, cache_write).",
    ["model", "kind"],
)
CLAUDE_COST = Counter("jorge_claude_cost_usd_total", "Estimated Claude spend in US dollars.", ["model"])
CLAUDE_DURATION = Histogram(
    "jorge_claude_duration_seconds", "Anthropic call latency.", ["model"], buckets=API_BUCKETS
)
CLAUDE_FALLBACKS = Counter(
    "jorge_claude_fallbacks_total",
    "Leads the rules engine qualified although Claude is configured, by reason.",
    ["reason"],
)
CLAUDE_TOKENS_SAVED = Counter(
    "jorge_claude_tokens_saved_total",
    "Input tokens progressive skills saved against the full prompt (TRACK_TOKEN_SAVINGS).",
    ["model"],
)

# --- Feature flags (read at start) ----------------------------------------------------------
FEATURE_FLAG_ENABLED = Gauge(
    "jorge_feature_flag_enabled",
    "1 when the feature flag is on in this process.",
    ["service", "flag"],
    multiprocess_mode="livemax",
)
FEATURE_USES = Counter(
    "jorge_feature_uses_total", "Times a flagged feature changed what a process did.", ["flag"]
)

# --- External availability (probes and calls feed these) --------------------------------
EXTERNAL_UP = Gauge(
    "jorge_external_service_up",
    "1 when the last call or probe to a dependency succeeded, else 0 (claude, ghl, database, redis, kafka).",
    ["service", "dependency"],
    multiprocess_mode="livemin",
)

# --- Kafka lag and topic depth (measured by the gateway, jorge_runtime/kafka/lag.py) ---
# Every gateway replica and uvicorn worker measures the same values: read them with max().
KAFKA_CONSUMER_LAG = Gauge(
    "jorge_kafka_consumer_lag",
    "Messages in a partition not yet committed by a consumer group (end offset minus committed).",
    ["group", "topic", "partition"],
    multiprocess_mode="livemostrecent",
)
KAFKA_TOPIC_MESSAGES = Gauge(
    "jorge_kafka_topic_messages",
    "Messages a topic holds (end minus earliest offset, all partitions): the dead-letter topic's depth.",
    ["topic"],
    multiprocess_mode="livemostrecent",
)
KAFKA_LAG_UP = Gauge(
    "jorge_kafka_lag_exporter_up",
    "1 when the last consumer lag measurement succeeded, else 0.",
    multiprocess_mode="livemax",
)
