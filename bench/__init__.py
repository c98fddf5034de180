"""Benchmarks: ``make bench`` (all) or ``python -m bench NAME`` (one). Each prints its figures and ratios."""
