"""Amaranth RTL generators."""
