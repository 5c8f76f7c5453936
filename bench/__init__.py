"""Bounded, loopback-only benchmarks (``python -m bench``; bench/README.md).

Every scenario is measured as a ratio against a bare aiohttp JSON endpoint that runs
right before and right after it, so numbers compare across machines of one class.
"""
