"""Kafka's wire protocol, sans-IO: framing, messages (via kio), the connection state machine,
normalised responses, record batches, compression.

Nothing here opens sockets, starts threads, reads clocks or logs; the client
(``kprod.net``) and the embedded cluster (``kprod.cluster``) share it.
"""
