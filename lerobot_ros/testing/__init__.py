"""Helpers for tests, benchmarks and users' own checks (DDS isolation, probes, processes)."""
