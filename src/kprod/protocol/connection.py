"""The client side of one broker connection, without I/O.

It numbers requests, turns them into frames, and turns received bytes back
into responses matched to their requests. Kafka answers requests on a
connection in order, so a response whose correlation id is not the oldest
outstanding one means the stream is broken.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from kprod.errors import ProtocolError
from kprod.protocol.framing import FrameReader, decode_response, encode_request

__all__ = ["ClientConnection"]

_MAX_CORRELATION_ID = 2**31 - 1


class ClientConnection:
    """Sans-IO request/response bookkeeping for one connection."""

    __slots__ = ("client_id", "_next_correlation_id", "_reader", "_awaiting")

    def __init__(self, client_id: str | None) -> None:
        self.client_id = client_id
        self._next_correlation_id = 0
        self._reader = FrameReader()
        # (correlation id, api key, api version) of requests awaiting a response, oldest first.
        self._awaiting: deque[tuple[int, int, int]] = deque()

    def send(self, request: Any, *, expect_response: bool = True) -> tuple[int, bytes]:
        """Frame ``request``: returns (correlation id, bytes to write to the socket).

        ``expect_response=False`` is for Produce with acks=0, which the broker
        never answers.
        """
        correlation_id = self._next_correlation_id
        self._next_correlation_id = 0 if correlation_id == _MAX_CORRELATION_ID else correlation_id + 1
        frame = encode_request(request, correlation_id, self.client_id)
        if expect_response:
            self._awaiting.append((correlation_id, request.__api_key__, request.__version__))
        return correlation_id, frame

    def receive(self, data: bytes | bytearray | memoryview) -> list[tuple[int, Any]]:
        """Feed received bytes; return (correlation id, response) for each complete response."""
        responses: list[tuple[int, Any]] = []
        for frame in self._reader.feed(data):
            if not self._awaiting:
                raise ProtocolError(
                    f"Received a {len(frame)}-byte response while no request was outstanding."
                )
            expected, api_key, version = self._awaiting.popleft()
            correlation_id, response = decode_response(frame, api_key, version)
            if correlation_id != expected:
                raise ProtocolError(
                    f"Response correlation id {correlation_id} does not match the oldest "
                    f"outstanding request ({expected}); the connection must be reset."
                )
            responses.append((correlation_id, response))
        return responses

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._awaiting)

    def outstanding(self) -> list[int]:
        """Correlation ids still awaiting a response, oldest first."""
        return [entry[0] for entry in self._awaiting]
