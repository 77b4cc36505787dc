"""CPU cost of reading one Produce response on the I/O thread: decode (kio) and normalise.

    python bench/produce_response.py

For Produce v3 and v11 responses of 1, 4 and 16 partitions, prints the best of
7 timeit runs in thread CPU time (so a busy shared machine inflates it less)
of ``decode_response`` and of ``protocol.responses.produce_results``, in µs
per response. A script, not a test.
"""

from __future__ import annotations

import datetime
import time
import timeit
from typing import Any

from kprod.protocol.entities import make_entity
from kprod.protocol.framing import decode_response, encode_response
from kprod.protocol.messages import ApiKey, ErrorCode, response_module
from kprod.protocol.responses import produce_results


def frame(version: int, partitions: int) -> bytes:
    """A successful Produce response frame (without size prefix), as a broker writes it."""
    m = response_module(ApiKey.PRODUCE, version)
    parts = tuple(
        make_entity(m.PartitionProduceResponse, index=i, error_code=ErrorCode.none, base_offset=1000 + i,
                    log_append_time=None, log_start_offset=0, record_errors=(), error_message=None)
        for i in range(partitions)
    )
    topic = m.TopicProduceResponse(name="bench-topic", partition_responses=parts)
    response = m.ProduceResponse(responses=(topic,), throttle_time=datetime.timedelta(0))
    return encode_response(response, 7)[4:]


def best_us(fn: Any, number: int = 5000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=7, timer=time.thread_time)) / number * 1e6


def main() -> None:
    for version in (3, 11):
        for partitions in (1, 4, 16):
            data = frame(version, partitions)
            _, response = decode_response(data, ApiKey.PRODUCE, version)
            decode = best_us(lambda: decode_response(data, ApiKey.PRODUCE, version))
            normalise = best_us(lambda: produce_results(response))
            print(f"Produce v{version:<2} {partitions:>2} partition(s): decode {decode:5.2f} µs, "
                  f"normalise {normalise:5.2f} µs per response")


if __name__ == "__main__":
    main()
