"""Benchmarks: ``make bench``. Each ``bench/bench_*.py`` exposes ``run() -> list[dict]``."""
