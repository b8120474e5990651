"""Sensor simulation: data with exact ground truth, written in the real datasets' formats."""
