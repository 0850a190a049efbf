"""A small ONNX graph builder: deterministic node names, parameters as initializers, constants.

Every model module builds its graph through `GraphBuilder`. Parameters (and only parameters)
become initializers, so the initializer element count is the model's parameter count; other
constants (RoPE frequencies, shapes, mask fills) become `Constant` nodes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 18
IR_VERSION = 10  # onnx 1.16+; onnxruntime 1.18+ reads it

ONNX_FLOAT_TYPE: dict[str, int] = {"float32": TensorProto.FLOAT, "bfloat16": TensorProto.BFLOAT16}
_NUMPY_FLOAT_TYPE: dict[int, type] = {
    TensorProto.FLOAT: np.float32,
    TensorProto.BFLOAT16: ml_dtypes.bfloat16,
}
_ELEMENT_BYTES: dict[int, int] = {
    TensorProto.FLOAT: 4,
    TensorProto.BFLOAT16: 2,
    TensorProto.INT64: 8,
}

Dim = int | str
Init = Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]


def init_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Fan-in scaled normal: a [in, out] matmul weight keeps activations near unit scale."""
    return rng.standard_normal(shape) / np.sqrt(shape[0])


def init_unit_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape)


def init_near_one(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Norm gains: ones plus noise, so a test notices a gain that is dropped or misapplied."""
    return 1.0 + 0.1 * rng.standard_normal(shape)


class GraphBuilder:
    """Collects nodes, inputs, outputs and initializers of one ONNX graph.

    Node names are `<scope>/<OpType>_<n>`, the value a node makes is `<node name>:<i>`, so
    two builds of the same config give byte-identical graphs.

    `given_weights` (name -> array, in the builder's layout) replaces the `weights` source: every
    parameter must be given with its shape, and every given array must be a parameter.
    """

    def __init__(
        self,
        name: str,
        *,
        float_type: str,
        weights: str,
        seed: int = 0,
        weights_location: str | None = None,
        given_weights: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        self.name = name
        self.float_type = ONNX_FLOAT_TYPE[float_type]
        self._weights = weights
        self._seed = seed
        self._given = given_weights
        self._location = weights_location or f"{name}.weights"
        self._external_offset = 0
        self._nodes: list[onnx.NodeProto] = []
        self._inputs: list[onnx.ValueInfoProto] = []
        self._outputs: list[onnx.ValueInfoProto] = []
        self._initializers: list[TensorProto] = []
        self._param_shapes: dict[str, tuple[int, ...]] = {}
        self._scope: list[str] = []
        self._counters: dict[str, int] = {}

    # ---- naming -------------------------------------------------------------------------
    @contextmanager
    def scope(self, name: str, *, absolute: bool = False) -> Iterator[None]:
        """Prefix node names made inside the block (`absolute` drops the enclosing scopes)."""
        saved = self._scope
        self._scope = [name] if absolute else [*saved, name]
        try:
            yield
        finally:
            self._scope = saved

    def _node_name(self, op_type: str) -> str:
        prefix = "/".join(self._scope)
        key = f"{prefix}/{op_type}"
        index = self._counters.get(key, 0)
        self._counters[key] = index + 1
        return f"{key}_{index}" if prefix else f"{op_type}_{index}"

    # ---- graph interface ------------------------------------------------------------------
    def input(self, name: str, elem_type: int, shape: Sequence[Dim]) -> str:
        self._inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def output(self, value: str, elem_type: int, shape: Sequence[Dim], *, first: bool = False) -> None:
        """Declare `value` (already produced under that name) a graph output."""
        info = helper.make_tensor_value_info(value, elem_type, list(shape))
        if first:
            self._outputs.insert(0, info)
        else:
            self._outputs.append(info)

    # ---- parameters -----------------------------------------------------------------------
    def param(self, name: str, shape: Sequence[int], init: Init = init_normal) -> str:
        """A model parameter as an initializer; asking again for the same name reuses it."""
        shape = tuple(int(d) for d in shape)
        if name in self._param_shapes:
            if self._param_shapes[name] != shape:
                raise ValueError(f"parameter {name} asked with shape {shape}, made as {self._param_shapes[name]}")
            return name
        self._param_shapes[name] = shape
        if self._given is not None:
            self._initializers.append(self._given_tensor(name, shape))
        elif self._weights == "random":
            rng = np.random.default_rng([self._seed, zlib.crc32(name.encode())])
            array = np.asarray(init(rng, shape)).astype(_NUMPY_FLOAT_TYPE[self.float_type])
            self._initializers.append(numpy_helper.from_array(array, name))
        else:
            self._initializers.append(self._described(name, shape))
        return name

    def _given_tensor(self, name: str, shape: tuple[int, ...]) -> TensorProto:
        if name not in self._given:
            raise ValueError(f"no weight given for parameter {name} {list(shape)}")
        array = np.asarray(self._given[name])
        if array.shape != shape:
            raise ValueError(f"weight {name} given with shape {list(array.shape)}, parameter is {list(shape)}")
        return numpy_helper.from_array(array.astype(_NUMPY_FLOAT_TYPE[self.float_type]), name)

    def _described(self, name: str, shape: tuple[int, ...]) -> TensorProto:
        """Shape, dtype and an external-data pointer into a weights file nobody writes."""
        tensor = TensorProto(name=name, data_type=self.float_type, dims=shape)
        tensor.data_location = TensorProto.EXTERNAL
        length = int(np.prod(shape, dtype=np.int64)) * _ELEMENT_BYTES[self.float_type]
        for key, value in (("location", self._location), ("offset", self._external_offset), ("length", length)):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, str(value)
        self._external_offset += length
        return tensor

    # ---- nodes ----------------------------------------------------------------------------
    def const(self, value: float | int | Sequence | np.ndarray, elem_type: int | None = None) -> str:
        """A Constant node; floats default to the model's float type, ints to int64."""
        array = np.asarray(value)
        if elem_type is None and array.dtype == np.bool_:
            elem_type = TensorProto.BOOL
        elif elem_type is None:
            elem_type = TensorProto.INT64 if np.issubdtype(array.dtype, np.integer) else self.float_type
        if elem_type == TensorProto.INT64:
            array = array.astype(np.int64)
        elif elem_type == TensorProto.BOOL:
            array = array.astype(np.bool_)
        else:
            array = array.astype(_NUMPY_FLOAT_TYPE[elem_type])
        name = self._node_name("Constant")
        tensor = numpy_helper.from_array(array, f"{name}:value")
        self._nodes.append(helper.make_node("Constant", [], [f"{name}:0"], name=name, value=tensor))
        return f"{name}:0"

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: object) -> str:
        """Add a single-output node; `out` names the output (graph outputs need fixed names)."""
        name = self._node_name(op_type)
        output = out or f"{name}:0"
        self._nodes.append(helper.make_node(op_type, list(inputs), [output], name=name, **attrs))
        return output

    def op_multi(self, op_type: str, *inputs: str, n_out: int, **attrs: object) -> list[str]:
        name = self._node_name(op_type)
        outputs = [f"{name}:{i}" for i in range(n_out)]
        self._nodes.append(helper.make_node(op_type, list(inputs), outputs, name=name, **attrs))
        return outputs

    # ---- result ---------------------------------------------------------------------------
    def model(self, doc: str = "") -> onnx.ModelProto:
        unused = sorted(set(self._given or ()) - set(self._param_shapes))
        if unused:
            raise ValueError(f"weights given that the graph has no parameter for: {', '.join(unused)}")
        graph = helper.make_graph(
            self._nodes, self.name, self._inputs, self._outputs, self._initializers, doc_string=doc
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tessera.models"
        )
        model.ir_version = IR_VERSION
        return model
