"""Loaded by every Python process the tests start (this folder is on their PYTHONPATH) and by pytest
itself (conftest): relit must never open a network connection. A connect to anything but this
machine raises, and is appended to the file named by RELIT_NETWORK_LOG, which the test session
checks at its end (a library that swallows the error still fails the run)."""

import os
import socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex


def _local_addresses() -> set[str]:
    names = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}
    try:
        names |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        pass
    return names


_LOCAL = _local_addresses()


def _check(sock: socket.socket, address) -> None:
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    host = str(address[0])
    if host in _LOCAL or host.startswith("127."):
        return
    log = os.environ.get("RELIT_NETWORK_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{os.getpid()} connect {address!r}\n")
    raise OSError(f"relit tests: a network connection to {address!r} was attempted; relit must stay offline")


def _guarded_connect(self, address):
    _check(self, address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)


socket.socket.connect = _guarded_connect
socket.socket.connect_ex = _guarded_connect_ex
