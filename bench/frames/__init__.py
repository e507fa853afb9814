"""The frame-level engine: how frame-level probes get their batches (``batching``)."""
