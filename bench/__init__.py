"""Benchmarks on the real stack; each prints ratios measured side by side in one run."""
