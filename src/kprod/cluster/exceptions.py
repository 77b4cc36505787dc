"""The one exception the embedded cluster's Python API raises.

A test that asks the cluster for something impossible (stop a broker that does
not exist, move a leader to a replica outside the ISR) gets this error with a
sentence naming what is wrong and what would work. It pickles as a plain
exception, so the child-process mode re-raises it unchanged in the parent.
"""

from __future__ import annotations

__all__ = ["ClusterError"]


class ClusterError(Exception):
    """A request to the embedded cluster's Python API could not be carried out."""
