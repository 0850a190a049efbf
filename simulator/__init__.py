"""Simulators of accelerator targets (programmable and spatial)."""
