"""The dataflow IR: typed graph, tensor types with symbolic dims, constants, verifier, printer."""

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph, GraphError, Node
from compiler.ir.ops import Op
from compiler.ir.shapes import Dim, Shape, dim_str, parse_dim, shape_str, symbol
from compiler.ir.tensor import Constant, ExternalLocation, MissingWeightsError, TensorType

__all__ = [
    "Constant",
    "DType",
    "Dim",
    "ExternalLocation",
    "Graph",
    "GraphError",
    "MissingWeightsError",
    "Node",
    "Op",
    "Shape",
    "TensorType",
    "dim_str",
    "parse_dim",
    "shape_str",
    "symbol",
]
