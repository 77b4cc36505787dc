"""kprod.net.poller: both pollers on real sockets (a socketpair): readiness, event changes,
timeouts, unregistering, hang-ups; and the compiled epoll calls' errors."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator

import pytest

from kprod import _native
from kprod.net.poller import READ, WRITE, EpollPoller, Poller, SelectorPoller, make_poller

has_epoll = _native.speedups is not None and hasattr(_native.speedups, "epoll_wait")
POLLERS = [SelectorPoller] + ([EpollPoller] if has_epoll else [])


@pytest.fixture(params=POLLERS, ids=lambda cls: cls.__name__)
def poller(request: pytest.FixtureRequest) -> Iterator[Poller]:
    instance = request.param()
    yield instance
    instance.close()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_make_poller_picks_epoll_when_the_accelerator_has_it() -> None:
    poller = make_poller()
    try:
        assert isinstance(poller, EpollPoller if has_epoll else SelectorPoller)
    finally:
        poller.close()


def test_reports_readable_only_once_data_arrived(poller: Poller, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    poller.register(a.fileno(), READ)
    assert poller.poll(0) == []
    b.send(b"x")
    assert poller.poll(1000) == [(a.fileno(), READ)]
    a.recv(10)
    assert poller.poll(0) == []


def test_modify_switches_to_writable_and_back(poller: Poller, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    poller.register(a.fileno(), READ)
    assert poller.poll(0) == []
    poller.modify(a.fileno(), READ | WRITE)
    assert poller.poll(0) == [(a.fileno(), WRITE)]
    poller.modify(a.fileno(), READ)
    assert poller.poll(0) == []


def test_a_wait_with_nothing_ready_lasts_about_its_timeout(poller: Poller, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    poller.register(a.fileno(), READ)
    start = time.monotonic()
    assert poller.poll(30) == []
    assert 0.025 <= time.monotonic() - start < 2.0


def test_a_fractional_timeout_still_waits(poller: Poller, pair: tuple[socket.socket, socket.socket]) -> None:
    a, _ = pair
    poller.register(a.fileno(), READ)
    start = time.monotonic_ns()
    assert poller.poll(0.5) == []
    assert time.monotonic_ns() - start >= 400_000


def test_unregistered_sockets_are_not_reported(poller: Poller, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    poller.register(a.fileno(), READ)
    poller.unregister(a.fileno())
    poller.unregister(a.fileno())  # twice is harmless (a connection closed after an error)
    b.send(b"x")
    assert poller.poll(0) == []


def test_a_hang_up_reports_both_so_the_reader_sees_it(poller: Poller, pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    poller.register(a.fileno(), READ)
    b.close()
    ((fd, events),) = poller.poll(1000)
    assert fd == a.fileno() and events & READ
    assert a.recv(10) == b""


@pytest.mark.skipif(not has_epoll, reason="kprod._speedups has no epoll calls here")
def test_compiled_epoll_calls_name_bad_arguments() -> None:
    speedups = _native.speedups
    assert speedups is not None
    with pytest.raises(OSError):
        speedups.epoll_wait(-1, 0, 8)
    with pytest.raises(ValueError, match="max_events"):
        speedups.epoll_wait(0, 0, 0)
    read_fd, write_fd = os.pipe()
    poller = EpollPoller()
    try:
        with pytest.raises(OSError):  # not registered
            poller.modify(read_fd, READ)
    finally:
        poller.close()
        os.close(read_fd)
        os.close(write_fd)
