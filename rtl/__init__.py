"""Amaranth RTL generators."""

__version__ = "1"
