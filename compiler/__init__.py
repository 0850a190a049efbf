"""Tessera compiler: ONNX -> dataflow IR -> targets."""
