"""ONNX's own node test cases, for every op we claim, through import + interpreter.

A case is collected when every node in its model is an op Tessera supports (this includes the
`_expanded` variants, which test our ops composed). Cases we knowingly cannot run are listed in
KNOWN_FAILURES with the reason; they are strict xfails, so fixing one forces updating the list.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.backend.test.case.node import collect_testcases

from compiler.backend import TesseraBackend
from compiler.ops.registry import supported_ops

_E8M0 = "Cast to float8e8m0 needs round_mode (power-of-two rounding), which is not implemented"
_NON_TENSOR = "optional and sequence types are not tensors; the IR carries tensors only"
_OPSET_1 = "the model declares opset 1; Tessera reads opset 7 and later (numpy-style broadcasting)"
_TRAINING = "training-mode Dropout draws random numbers; the reference generator cannot be reproduced"
KNOWN_FAILURES: dict[str, str] = {
    "test_cast_e8m0_FLOAT16_to_FLOAT8E8M0": _E8M0,
    "test_cast_e8m0_FLOAT_to_FLOAT8E8M0": _E8M0,
    "test_identity_opt": _NON_TENSOR,
    "test_identity_sequence": _NON_TENSOR,
    "test_not_2d": _OPSET_1,
    "test_not_3d": _OPSET_1,
    "test_not_4d": _OPSET_1,
    "test_training_dropout": _TRAINING,
    "test_training_dropout_default": _TRAINING,
    "test_training_dropout_default_mask": _TRAINING,
    "test_training_dropout_mask": _TRAINING,
}


def _claimed_cases():
    supported = set(supported_ops()) | {"Constant"}
    cases = []
    for case in collect_testcases(None):
        if case.model is None or not case.data_sets:
            continue
        op_types = {n.op_type for n in case.model.graph.node}
        domains = {n.domain for n in case.model.graph.node}
        if op_types <= supported and domains <= {"", "ai.onnx"}:
            cases.append(case)
    return sorted(cases, key=lambda c: c.name)


CASES = _claimed_cases()


def _as_array(value):
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


@pytest.mark.parametrize(
    "case",
    [pytest.param(c, id=c.name, marks=[pytest.mark.xfail(strict=True, reason=KNOWN_FAILURES[c.name])]
                  if c.name in KNOWN_FAILURES else []) for c in CASES],
)
def test_onnx_node_case(case):
    rep = TesseraBackend.prepare(case.model)
    for inputs, expected in case.data_sets:
        outputs = rep.run([_as_array(x) for x in inputs])
        assert len(outputs) == len(expected)
        for got, want in zip(outputs, expected):
            want = _as_array(want)
            assert got.dtype == want.dtype, f"dtype {got.dtype} != {want.dtype}"
            assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
            if want.dtype.kind in "fc" or want.dtype.kind == "V":
                np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                           rtol=case.rtol, atol=max(case.atol, 1e-6))
            else:
                np.testing.assert_array_equal(got, want)


def test_every_claimed_op_has_node_cases():
    covered = {n.op_type for c in CASES for n in c.model.graph.node}
    assert len(CASES) > 100
    assert {"MatMul", "Reshape", "Softmax", "Gather", "Add"} <= covered
