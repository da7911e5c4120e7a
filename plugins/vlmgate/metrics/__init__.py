"""Pure functions from observations to ``MetricResult`` records (no model, no I/O)."""
