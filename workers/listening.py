"""A server's socket, bound before it says it listens: a port another program holds is one line
naming the setting that moves it, never "listening" and then a crash."""

from __future__ import annotations

import socket


class PortTaken(Exception):
    pass


def bound(host: str, port: int, setting: str) -> socket.socket:
    """A listening TCP socket on host:port, for uvicorn to serve on (`Server.serve(sockets=...)`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a listener, not TIME_WAIT
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError as err:
        listener.close()
        why = f"{host}:{port} cannot be listened on ({err.strerror}): move it with {setting}"
        raise PortTaken(why) from err
    listener.set_inheritable(True)
    return listener
