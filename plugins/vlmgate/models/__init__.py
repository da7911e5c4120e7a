"""Model adapters, registered by spec scheme under ``vlmgate.models`` (``hf:``, ``bundled:``)."""
