"""Benchmark suite: process topologies, an HTTP load driver with CPU accounting, and scenarios (see README.md)."""
