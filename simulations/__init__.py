"""Simulated environments for demos, tests and offline experiments."""
