"""Local stand-ins for third-party services, for development and tests (not deployed)."""
