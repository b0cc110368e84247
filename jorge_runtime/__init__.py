"""Shared runtime of every Jorge service: settings, logging, broker, database, redis, health."""
