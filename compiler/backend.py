"""An `onnx.backend` over import + interpreter, so ONNX's own node test cases can run on it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from compiler.frontend.onnx_import import import_onnx
from compiler.interp.run import run_graph
from compiler.ir.graph import Graph


class TesseraRep(BackendRep):
    def __init__(self, graph: Graph, check_types: bool = True) -> None:
        self.graph = graph
        self.check_types = check_types

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            feeds = dict(zip(self.graph.inputs, inputs))
        outputs = run_graph(self.graph, feeds, check_types=self.check_types)
        return tuple(outputs[name] for name in self.graph.outputs)


class TesseraBackend(Backend):
    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> TesseraRep:
        super().prepare(model, device, **kwargs)
        return TesseraRep(import_onnx(model))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Sequence[np.ndarray], device: str = "CPU",
                  **kwargs: Any) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


prepare = TesseraBackend.prepare
run_model = TesseraBackend.run_model
supports_device = TesseraBackend.supports_device
