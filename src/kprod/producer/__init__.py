"""The producer machinery: accumulator, batches, memory, metadata, sender, idempotence."""
