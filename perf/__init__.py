"""Benchmarks: each prints numbers (median and spread, and ratios to a baseline in the same run)."""
