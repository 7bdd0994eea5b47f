"""The certifier: cases, the tolerance model, certify, identify, golden replay, reports."""
