"""A producer the program never closed still delivers what it accepted when the interpreter exits."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from kprod.cluster import EmbeddedCluster


def test_a_dropped_unclosed_producer_is_flushed_at_exit(cluster: EmbeddedCluster, topic: str) -> None:
    script = textwrap.dedent(
        f"""
        import gc
        from kprod import Producer

        def send_and_forget():
            producer = Producer({{"bootstrap.servers": "{cluster.bootstrap_servers}", "linger.ms": 600000}})
            for i in range(5):
                producer.send("{topic}", b"%d" % i, partition=1)
            # no close(), no flush(): the only reference goes away here

        send_and_forget()
        gc.collect()
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert [r.value for r in cluster.records(topic, 1)] == [b"0", b"1", b"2", b"3", b"4"]
