"""Funnel's shared library: event contracts, settings and Kafka helpers."""
