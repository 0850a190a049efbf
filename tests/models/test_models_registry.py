"""The registry and every model in it: valid ONNX in both forms, I/O naming, parameter counts
equal to initializer sizes, byte figures that agree with the decode graph, supported ops."""

from __future__ import annotations

from functools import cache

import numpy as np
import onnx
import pytest
from model_helpers import check_model, run
from onnx import TensorProto

import models

FULL_SIZE = [n for n in models.list_models() if models.get_config(n).weights == "described"]
TINY = [n for n in models.list_models() if models.get_config(n).weights == "random"]

# The compiler's op set (issue "compiler/"), plus the extras a model genuinely needs.
SUPPORTED_OPS = set(
    "Add Sub Mul Div Pow Sqrt Reciprocal Neg Exp Log Tanh Sigmoid Softplus Erf Cos Sin Abs Max Min Clip "
    "MatMul Gemm Einsum Reshape Transpose Concat Split Slice Gather GatherND Expand Unsqueeze Squeeze "
    "Flatten Shape Size Range Where Cast CastLike Identity Constant ConstantOfShape Trilu Equal Greater "
    "Less LessOrEqual GreaterOrEqual And Or Not IsNaN ReduceMean ReduceSum ReduceMax Softmax "
    "LayerNormalization CumSum Conv Pad".split()
)
EXTRA_OPS = {"sparse": {"TopK"}}
ELEMENT_BYTES = {TensorProto.FLOAT: 4, TensorProto.BFLOAT16: 2, TensorProto.INT64: 8}


@cache
def built(name: str, form: str) -> onnx.ModelProto:
    return models.build_model(name, form)


def dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_expected_models_are_registered():
    expected = {
        "llama3.1-8b", "llama3.2-1b", "llama3.1-70b", "tiny-llama", "tiny-swa", "tiny-hybrid",
        "llama3.1-8b-hybrid", "tiny-sparse", "llama3.1-8b-sparse", "tiny-compact", "llama3.1-8b-compact",
        "tiny-mamba2", "mamba2-2.7b", "tiny-grumem", "llama3.1-8b-grumem", "tiny-engram", "llama3.1-8b-engram",
    }
    assert expected <= set(models.list_models())


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError, match="llama3.1-8b") as err:
        models.get_config("gpt-5")
    assert isinstance(err.value, models.UnknownModelError)
    with pytest.raises(ValueError, match="tiny-mamba2"):
        models.build_model("gpt-5")


def test_unknown_form_lists_forms():
    with pytest.raises(ValueError, match="prefill.*decode"):
        models.build_model("tiny-llama", "training")


@pytest.mark.parametrize("form", models.FORMS)
@pytest.mark.parametrize("name", models.list_models())
def test_checker_passes(name, form, tmp_path):
    check_model(built(name, form), tmp_path)


@pytest.mark.parametrize("form", models.FORMS)
@pytest.mark.parametrize("name", TINY)
def test_tiny_models_run_on_onnxruntime(name, form):
    """Feed every input with small valid values; every output comes back finite."""
    model = built(name, form)
    sizes = {"batch": 2, "seq": 8, "past_len": 5}
    feeds = {}
    for value in model.graph.input:
        shape = [sizes[d] if isinstance(d, str) else d for d in dims(value)]
        if value.type.tensor_type.elem_type == TensorProto.INT64:
            feeds[value.name] = np.broadcast_to(np.arange(shape[-1]) + 5 * (form == "decode"), shape).astype(np.int64)
        else:
            feeds[value.name] = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    outputs = run(model, feeds)
    assert all(np.isfinite(v).all() for v in outputs.values())
    assert outputs["logits"].shape[:2] == (2, 1 if form == "decode" else 8)


@pytest.mark.parametrize("name", models.list_models())
def test_io_follows_optimum_names(name):
    for form in models.FORMS:
        model = built(name, form)
        inputs = {i.name: dims(i) for i in model.graph.input}
        outputs = {o.name: dims(o) for o in model.graph.output}
        seq = 1 if form == "decode" else "seq"
        assert inputs["input_ids"] == ["batch", seq]
        assert model.graph.output[0].name == "logits" and outputs["logits"][:2] == ["batch", seq]
        symbols = {d for shape in (*inputs.values(), *outputs.values()) for d in shape if isinstance(d, str)}
        assert symbols <= {"batch", "seq", "past_len", "past_len + 1"}, symbols
        if form == "prefill":
            assert not {"past_len", "past_len + 1"} & symbols
            assert not any(n.startswith("past_key_values") for n in inputs)


@pytest.mark.parametrize("name", models.list_models())
def test_parameter_count_is_initializer_size(name):
    config = models.get_config(name)
    for form in models.FORMS:
        initializers = built(name, form).graph.initializer
        assert sum(int(np.prod(t.dims)) for t in initializers) == models.parameter_count(config)


def test_published_parameter_counts():
    assert models.parameter_count(models.get_config("llama3.1-8b")) == 8_030_261_248
    assert models.parameter_count(models.get_config("llama3.1-70b")) == 70_553_706_496
    assert models.parameter_count(models.get_config("llama3.2-1b")) == 1_235_814_400


def test_llama_kv_bytes():
    assert models.kv_bytes_per_token(models.get_config("llama3.1-8b")) == 131072
    assert models.state_bytes(models.get_config("llama3.1-8b")) == 0


@pytest.mark.parametrize("name", models.list_models())
def test_byte_figures_agree_with_decode_graph(name):
    """kv_bytes_per_token: bytes per unit of past_len in the decode inputs; state_bytes: the rest
    (GRU-Mem adds the slot memory it keeps between chunks, a prefill input)."""
    config = models.get_config(name)
    decode = built(name, "decode")
    per_token = fixed = 0
    for value in decode.graph.input[1:]:
        if value.name == "position_ids":
            continue
        shape = dims(value)
        size = ELEMENT_BYTES[value.type.tensor_type.elem_type] * int(np.prod([d for d in shape if isinstance(d, int)]))
        if "past_len" in shape:
            per_token += size
        else:
            fixed += size
    if name.endswith("grumem"):
        fixed += sum(int(np.prod(dims(v)[1:])) * config.dtype_bytes
                     for v in built(name, "prefill").graph.input if v.name.startswith("past_memory"))
    assert models.kv_bytes_per_token(config) == per_token
    assert models.state_bytes(config) == fixed


@pytest.mark.parametrize("name", models.list_models())
def test_ops_are_supported(name):
    used = {node.op_type for form in models.FORMS for node in built(name, form).graph.node}
    allowed = SUPPORTED_OPS | set().union(*(ops for family, ops in EXTRA_OPS.items() if family in name))
    assert used <= allowed, used - allowed


@pytest.mark.parametrize("name", FULL_SIZE)
def test_full_size_weights_are_described_only(name):
    model = built(name, "decode")
    assert model.ByteSize() < 8 * 2**20
    for tensor in model.graph.initializer:
        assert tensor.data_type == TensorProto.BFLOAT16
        assert tensor.data_location == TensorProto.EXTERNAL and not tensor.raw_data
        entries = {e.key: e.value for e in tensor.external_data}
        assert entries["location"] == f"{name}.weights"
        assert int(entries["length"]) == 2 * int(np.prod(tensor.dims))


def test_builds_are_deterministic():
    for name in ("tiny-sparse", "llama3.1-8b-engram"):
        assert models.build_model(name, "prefill").SerializeToString() == built(name, "prefill").SerializeToString()
