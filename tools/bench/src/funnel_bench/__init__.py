"""Benchmarks for Funnel: each service against a physical baseline run in the same process tree."""
