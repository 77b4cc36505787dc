"""The chaos proxy used by the reliability tests does exactly the damage it is told to.

A fake broker behind it records every byte it receives and answers each request frame
with a response frame carrying the same correlation id, so each fault can be checked
byte for byte: what reached the broker, what came back to the client.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO_ROOT = Path(__file__).resolve().parents[2]
if str(_REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(_REPO_ROOT))

from tests.helpers import wait_for  # noqa: E402
from tests.integration.chaos_proxy import ChaosProxy  # noqa: E402

PRODUCE, METADATA = 0, 3


def request(api_key: int, correlation: int, body: bytes = b"") -> bytes:
    """A Kafka request frame: size, api key, version 9, correlation id, then ``body``."""
    payload = struct.pack(">hhi", api_key, 9, correlation) + body
    return struct.pack(">i", len(payload)) + payload


def read_frames(sock: socket.socket, count: int) -> list[int]:
    """Correlation ids of the next ``count`` response frames."""
    ids = []
    for _ in range(count):
        size = struct.unpack(">i", _exactly(sock, 4))[0]
        ids.append(struct.unpack(">i", _exactly(sock, size)[:4])[0])
    return ids


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionResetError("closed")
        data += chunk
    return data


def closed_by_peer(sock: socket.socket) -> bool:
    """The connection ends (EOF or reset) before any more bytes arrive."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


class FakeBroker:
    """Answers each request frame with ``size, correlation id, b"ok"``; keeps what it got."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.received: list[bytearray] = []  # per accepted connection, every byte
        self.ended: list[threading.Event] = []  # set when that connection reached EOF
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self.lock:
                data, ended = bytearray(), threading.Event()
                self.received.append(data)
                self.ended.append(ended)
            threading.Thread(target=self._serve, args=(conn, data, ended), daemon=True).start()

    def _serve(self, conn: socket.socket, data: bytearray, ended: threading.Event) -> None:
        with conn:
            answered = 0
            while True:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    break
                if not chunk:
                    break
                data += chunk
                while len(data) - answered >= 4:
                    size = struct.unpack(">i", data[answered:answered + 4])[0]
                    if len(data) - answered < 4 + size:
                        break
                    correlation = data[answered + 8:answered + 12]
                    answered += 4 + size
                    try:
                        conn.sendall(struct.pack(">i", 6) + correlation + b"ok")
                    except OSError:
                        break
        ended.set()

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    fake = FakeBroker()
    yield fake
    fake.close()


@pytest.fixture
def proxy(broker: FakeBroker) -> Iterator[ChaosProxy]:
    with ChaosProxy({1: broker.address}) as chaos:
        yield chaos


def connect(proxy: ChaosProxy) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.ports[1]), timeout=10)
    return sock


def test_forwards_frames_both_ways_unchanged(proxy: ChaosProxy, broker: FakeBroker) -> None:
    frames = request(18, 1) + request(METADATA, 2, b"x" * 300) + request(PRODUCE, 3, bytes(range(256)) * 40)
    with connect(proxy) as sock:
        sock.sendall(frames)
        assert read_frames(sock, 3) == [1, 2, 3]
    assert bytes(broker.received[0]) == frames
    stats = proxy.stats()
    assert (stats["bytes_up"], stats["bytes_down"], stats["connections"]) == (len(frames), 3 * 10, 1)
    assert proxy.address_map() == {broker.address: ("127.0.0.1", proxy.ports[1])}
    assert proxy.bootstrap_servers == f"127.0.0.1:{proxy.ports[1]}"


def test_cut_request_forwards_half_of_the_next_produce_then_closes(proxy: ChaosProxy, broker: FakeBroker) -> None:
    proxy.cut_requests(1)
    first = request(METADATA, 1, b"m" * 50)
    produce = request(PRODUCE, 2, b"p" * 1000)
    with connect(proxy) as sock:
        sock.sendall(first)
        assert read_frames(sock, 1) == [1]
        sock.sendall(produce)
        assert closed_by_peer(sock)
    assert broker.ended[0].wait(10)
    # The whole first frame, then the produce frame's size and header and half its body.
    assert bytes(broker.received[0]) == first + produce[:12 + (len(produce) - 12) // 2]
    assert proxy.stats()["cuts_done"] == 1 and proxy.stats()["cut_pending"] == 0


def test_lost_response_reaches_the_broker_but_not_the_client(proxy: ChaosProxy, broker: FakeBroker) -> None:
    proxy.lose_responses(1)
    first = request(METADATA, 1)
    produce = request(PRODUCE, 2, b"p" * 500)
    with connect(proxy) as sock:
        sock.sendall(first + produce)
        assert read_frames(sock, 1) == [1]
        assert closed_by_peer(sock)
    assert broker.ended[0].wait(10)
    assert bytes(broker.received[0]) == first + produce
    stats = proxy.stats()
    assert (stats["losses_done"], stats["lose_pending"]) == (1, 0)


def test_swallowed_response_vanishes_and_the_connection_goes_on(proxy: ChaosProxy, broker: FakeBroker) -> None:
    proxy.swallow_responses(1)
    frames = request(METADATA, 1) + request(PRODUCE, 2, b"p" * 300) + request(METADATA, 3)
    with connect(proxy) as sock:
        sock.sendall(frames)
        assert read_frames(sock, 2) == [1, 3]
        sock.sendall(request(PRODUCE, 4, b"q"))
        assert read_frames(sock, 1) == [4]
    assert bytes(broker.received[0]) == frames + request(PRODUCE, 4, b"q")
    stats = proxy.stats()
    assert (stats["swallows_done"], stats["swallow_pending"], stats["bytes_down"]) == (1, 0, 3 * 10)


def test_responses_split_anywhere_are_followed(proxy: ChaosProxy, broker: FakeBroker) -> None:
    """Frame boundaries are found however the bytes arrive (here: one byte per segment)."""
    proxy.lose_responses(1)
    with connect(proxy) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for correlation in range(1, 4):
            for byte in request(METADATA, correlation, b"abc"):
                sock.send(bytes([byte]))
        assert read_frames(sock, 3) == [1, 2, 3]
        sock.sendall(request(PRODUCE, 4, b"p"))
        assert closed_by_peer(sock)
    assert proxy.stats()["losses_done"] == 1


def test_armed_fault_waits_for_a_produce_request_on_any_connection(proxy: ChaosProxy, broker: FakeBroker) -> None:
    proxy.lose_responses(1)
    with connect(proxy) as sock:
        sock.sendall(request(METADATA, 1))
        assert read_frames(sock, 1) == [1]
    with connect(proxy) as sock:
        sock.sendall(request(PRODUCE, 7, b"p"))
        assert closed_by_peer(sock)
    assert proxy.stats()["losses_done"] == 1


def test_drop_all_resets_every_open_connection(proxy: ChaosProxy) -> None:
    socks = [connect(proxy) for _ in range(2)]
    try:
        for index, sock in enumerate(socks):
            sock.sendall(request(METADATA, index))
            assert read_frames(sock, 1) == [index]
        assert proxy.drop_all() == 2
        assert all(closed_by_peer(sock) for sock in socks)
        assert proxy.stats()["open"] == 0
        with connect(proxy) as sock:  # new connections work again
            sock.sendall(request(METADATA, 9))
            assert read_frames(sock, 1) == [9]
    finally:
        for sock in socks:
            sock.close()


def test_stall_holds_bytes_then_delivers_them(proxy: ChaosProxy, broker: FakeBroker) -> None:
    with connect(proxy) as sock:
        sock.sendall(request(METADATA, 1))
        assert read_frames(sock, 1) == [1]
        proxy.stall(1.5)
        assert proxy.stats()["stalled"]
        sock.sendall(request(METADATA, 2))
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing comes back while stalled
        assert len(broker.received[0]) == len(request(METADATA, 1))
        sock.settimeout(10)
        assert read_frames(sock, 1) == [2]  # delivered once the stall ends
    wait_for(lambda: not proxy.stats()["stalled"], 5, "the stall ending")
    assert proxy.stats()["stalls_done"] == 1


def test_a_broker_that_is_down_resets_the_client() -> None:
    unused = socket.create_server(("127.0.0.1", 0))
    address = unused.getsockname()
    unused.close()
    with ChaosProxy({1: address}) as chaos:
        try:
            sock = connect(chaos)
        except ConnectionResetError:
            return  # the reset came back before connect() returned
        with sock:
            assert closed_by_peer(sock)


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one upstream"):
        ChaosProxy({})
