"""Front ends: ONNX files and protos to the IR."""

from compiler.frontend.onnx_import import OnnxImportError, import_onnx, load_model

__all__ = ["OnnxImportError", "import_onnx", "load_model"]
