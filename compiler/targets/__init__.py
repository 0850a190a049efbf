"""Compilation targets: programmable accelerator (ISA) and spatial model-as-hardware."""
