"""Pydantic event and API models shared by the gateway and the workers, and the topic names."""
