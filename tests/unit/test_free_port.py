"""Ports chosen for the processes of one stack never repeat, even before any of them binds."""

from __future__ import annotations

from jorge_cli.stack import free_port


def test_free_port_never_hands_out_a_port_twice() -> None:
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
