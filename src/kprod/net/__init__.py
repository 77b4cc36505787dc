"""Sockets: per-broker connections and version negotiation."""
