"""The key the tests' settings seal stored secrets with (webhook secrets are never stored in plain
text); one per test process, shared by tests/conftest.py's settings and tests that decrypt."""

from __future__ import annotations

from jorge_runtime.credential_cipher import generate_key

CREDENTIALS_KEY = generate_key()
