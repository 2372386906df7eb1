"""Benchmarks: `make bench` writes bench/results.json. Counts and ratios measured in one run,
never timed assertions in tests (these machines are shared and noisy)."""
