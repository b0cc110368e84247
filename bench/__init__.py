"""Benchmarks of the Jorge Platform: measurement tools, not tests (no timing assertions)."""
