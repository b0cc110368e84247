"""Feature flags: read once at start from Settings, logged and exported as metrics.

Every flag defaults off. A flag's use (a lead whose prompt or model it changed) is counted in
``jorge_feature_uses_total`` and, with LOG_FEATURE_USAGE, logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from jorge_runtime.observability.metrics import FEATURE_FLAG_ENABLED, FEATURE_USES
from jorge_runtime.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeatureFlags:
    """The flags one process runs with."""

    progressive_skills: bool = False
    agent_mesh: bool = False
    agent_mesh_routing: str = "cost_aware"
    mcp_integration: bool = False
    log_feature_usage: bool = False
    track_token_savings: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> FeatureFlags:
        """The flags as configured (ENABLE_*, AGENT_MESH_ROUTING, LOG_FEATURE_USAGE, ...)."""
        return cls(
            progressive_skills=settings.enable_progressive_skills,
            agent_mesh=settings.enable_agent_mesh,
            agent_mesh_routing=settings.agent_mesh_routing,
            mcp_integration=settings.enable_mcp_integration,
            log_feature_usage=settings.log_feature_usage,
            track_token_savings=settings.track_token_savings,
        )

    def as_env(self) -> dict[str, bool]:
        """Each on/off flag under its environment variable's name."""
        return {
            "ENABLE_PROGRESSIVE_SKILLS": self.progressive_skills,
            "ENABLE_AGENT_MESH": self.agent_mesh,
            "ENABLE_MCP_INTEGRATION": self.mcp_integration,
            "LOG_FEATURE_USAGE": self.log_feature_usage,
            "TRACK_TOKEN_SAVINGS": self.track_token_savings,
        }

    def announce(self, service: str) -> None:
        """Log the flags at start and export them as gauges."""
        for name, enabled in self.as_env().items():
            FEATURE_FLAG_ENABLED.labels(service, name).set(1 if enabled else 0)
        enabled_names = [name for name, on in self.as_env().items() if on]
        log.info(
            "feature flags",
            extra={"enabled": enabled_names, "agent_mesh_routing": self.agent_mesh_routing},
        )

    def record_use(self, flag: str, **detail: Any) -> None:
        """Count one use of ``flag``; log it when LOG_FEATURE_USAGE is on."""
        FEATURE_USES.labels(flag).inc()
        if self.log_feature_usage:
            log.info("feature_flag used", extra={"flag": flag, **detail})
