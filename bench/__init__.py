"""Benchmarks: each module is a script writing JSON to bench/results/ (see BENCHMARKS.md)."""
