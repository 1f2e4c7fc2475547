"""The zoo's tests run offline: any connection beyond this machine, or any name lookup of another
host (which would query a DNS server before any connect), fails the test that makes it (the Hub
is reached only through a local cache or a fake)."""

import ipaddress
import socket

import pytest

_connect = socket.socket.connect
_getaddrinfo = socket.getaddrinfo


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def _local_only(self: socket.socket, address) -> None:
    if isinstance(address, tuple) and not _is_loopback(address[0]):
        pytest.fail(f"a zoo test tried to reach {address} over the network")
    _connect(self, address)


def _local_lookup(host, *args, **kwargs):
    if host is not None and not _is_loopback(host if isinstance(host, str) else host.decode()):
        pytest.fail(f"a zoo test tried to look up {host!r} on the network")
    return _getaddrinfo(host, *args, **kwargs)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _local_only)
    monkeypatch.setattr(socket, "getaddrinfo", _local_lookup)
