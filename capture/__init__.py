"""Skeleton sources, layouts, the canonical space, windowing and the capture process.

Never imports torch: the PC beside a sensor runs capture alone on a light install.
"""
