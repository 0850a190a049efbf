"""Lowering the IR to the programmable accelerator ISA."""
