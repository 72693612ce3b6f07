"""Benchmarks against a lean git baseline; run on demand with `python -m bench`."""
