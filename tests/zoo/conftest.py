"""The zoo's tests run offline: any connection beyond this machine fails the test that makes it
(the Hub is reached only through a local cache or a fake)."""

import ipaddress
import socket

import pytest

_connect = socket.socket.connect


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return False


def _local_only(self: socket.socket, address) -> None:
    if isinstance(address, tuple) and not _is_loopback(address[0]):
        pytest.fail(f"a zoo test tried to reach {address} over the network")
    _connect(self, address)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _local_only)
