"""Benchmark loaders, registered by spec scheme under ``vlmgate.benchmarks``."""
