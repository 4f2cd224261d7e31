"""Numpy on one window of unified joints: encoder features, movement descriptors, micro-gestures."""
