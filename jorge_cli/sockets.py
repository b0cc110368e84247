"""A listening TCP socket bound like uvicorn binds its own, for a second port of the same app."""

from __future__ import annotations

import socket


def bind_socket(host: str, port: int) -> socket.socket:
    """Listen on host:port (IPv6 when the host is), inheritable by uvicorn's worker processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"jorge: cannot listen on {host}:{port} (ADMIN_PORT): {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
