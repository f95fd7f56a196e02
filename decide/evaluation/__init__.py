"""Offline evaluation: off-policy estimators, replay of logged data, comparisons and reports."""
