"""Fail loudly and say why: unbound dims, ops the target cannot lower, bad options."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import chip, model_graph

from compiler.ir.dtypes import DType
from compiler.ir.graph import Graph
from compiler.ir.ops import Op
from compiler.ir.shapes import symbol
from compiler.ir.tensor import Constant, TensorType
from compiler.passes.fold import GraphBuilder
from compiler.targets.programmable.lower import lower_graph
from compiler.targets.programmable.options import LoweringError, LoweringOptions


def test_an_unbound_dim_names_the_value_and_symbol():
    with pytest.raises(LoweringError, match=r"graph input 'past_key_values.0.key'.*bind past_len"):
        lower_graph(model_graph("tiny-llama", "decode"), chip("matx-one"), LoweringOptions())


def test_an_op_the_target_cannot_lower_is_named_with_the_supported_list():
    graph = Graph("ranged")
    builder = GraphBuilder(graph)
    graph.add_input("limit", TensorType(DType.INT64, ()))
    for name, value in (("zero", 0), ("one", 1)):
        builder.add_constant(Constant(name, TensorType(DType.INT64, ()), data=np.array(value), is_parameter=False))
    builder.emit("iota", Op.RANGE, ["zero", "limit", "one"], ["y"], {})
    graph.outputs.append("y")
    with pytest.raises(LoweringError, match=r"Range node 'iota': the programmable target cannot lower Range; "
                                            r"supported: .*Attention.*MatMul"):
        lower_graph(graph, chip("matx-one"), LoweringOptions(bindings={graph.type_of("y").shape[0].name: 5}))


def test_bad_options_are_refused():
    with pytest.raises(LoweringError, match="weight_precision 'fp6'"):
        LoweringOptions(weight_precision="fp6")
    with pytest.raises(LoweringError, match="batch must be positive"):
        LoweringOptions(batch=0)


def test_symbols_are_positive_integers():
    assert symbol("past_len").is_positive
