#!/usr/bin/env python3
"""Export the checked-in Hugging Face ONNX fixtures under ``tests/fixtures/hf``.

DEV-ONLY: this script needs ``torch`` (2.13, CPU is enough), ``transformers``
(5.x), ``onnx``, ``onnxruntime``, ``onnxscript`` and ``numpy``.  None of these
(except onnx/numpy) are runtime dependencies of Tessera; the fixtures it
writes are checked in so that the test-suite never needs torch::

    python3.11 -m venv /tmp/export-venv
    /tmp/export-venv/bin/pip install torch==2.13.0
    /tmp/export-venv/bin/pip install torch==2.13.0 transformers onnx onnxruntime onnxscript numpy
    /tmp/export-venv/bin/python tools/export_fixtures.py [--only NAME ...] [--out tests/fixtures/hf]

For every tiny fixture ``<out>/<name>/`` gets

* ``model.onnx``   -- opset 18, exported with ``torch.onnx.export(..., dynamo=True)``,
* ``inputs.npz``   -- arrays keyed by the ONNX graph input names,
* ``outputs.npz``  -- torch's (not onnxruntime's) outputs keyed by the ONNX graph
  output names, fp32,
* ``meta.json``    -- model class, config (full ``config.to_dict()``), parameter count, op histogram,
  dynamic dims, onnxruntime-vs-torch max abs diff, notes.

``llama3.1-8b-meta`` is the full Llama-3.1-8B architecture built on the meta
device: only ``model.onnx`` (graph without weight bytes, every parameter an
EXTERNAL initializer pointing at a ``model.onnx.data`` that does not exist)
and ``meta.json``.

Post-processing common to all fixtures
--------------------------------------
The exporter is run with ``optimize=False``; the script then runs the
onnxscript optimizer itself *with the torch parameters temporarily turned into
graph inputs*, so that constant folding / initializer de-duplication can never
fold, transpose or merge a weight.  Afterwards the graph initializers are
exactly ``model.named_parameters()`` (HF names, tied weights once), and every
other constant the exporter stored as an initializer (rotary ``inv_freq``,
folded mask/shape constants, scalars) is turned into a ``Constant`` node with
the same output name and value.  This is checked (onnx.checker, initializer
names/shapes/element count == torch parameters) and, for the tiny fixtures,
onnxruntime is run on the saved inputs and must match torch to 1e-4 relative
to the output scale, otherwise the script fails.

Tiny fixtures use random weights that are re-initialised deterministically
(seeded) with larger-than-HF scales (see ``reinit_parameters``) so that the
outputs are O(1) and every weight -- including norm weights and biases --
actually matters.

The script is deterministic: running it twice produces byte-identical files
(fixed seeds, fixed zip timestamps, sorted JSON; timings are printed, not
stored).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import io
import json
import math
import os
import re
import sys
import time
import warnings
import zipfile
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import onnx.numpy_helper
import onnx_ir as ir
import onnxruntime as ort
import onnxscript
import onnxscript.optimizer
import torch
import transformers
from torch import nn

OPSET = 18
REL_TOL = 1e-4  # onnxruntime vs torch, relative to max |torch output|
MAX_TINY_FILE_BYTES = 1_000_000
LLAMA31_8B_PARAMS = 8_030_261_248
WRAP_PREFIX = "hf."  # attribute name of the HF model inside the export wrappers

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, "tests", "fixtures", "hf")


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def log(msg: str) -> None:
    print(msg, flush=True)


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@torch.no_grad()
def reinit_parameters(model: nn.Module, seed: int) -> None:
    """Deterministic, O(1)-output random init.

    * Linear / Embedding / Conv1d / HF Conv1D weights: N(0, 1/fan_in)
    * other 1-D ``weight`` (norm scales): 1 + 0.1 N(0,1)
    * any 1-D ``bias``: 0.1 N(0,1)
    * anything else (e.g. Mamba2 ``A_log``, ``D``, ``dt_bias``) keeps the HF init.
    """
    gen = torch.Generator().manual_seed(seed)

    def randn(t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=gen, dtype=torch.float32).to(t.dtype)

    from transformers.pytorch_utils import Conv1D

    seen: set[int] = set()
    for _mname, mod in model.named_modules():
        for pname, p in mod.named_parameters(recurse=False):
            if id(p) in seen:
                continue
            seen.add(id(p))
            if pname == "weight" and isinstance(mod, nn.Linear):
                p.copy_(randn(p) / math.sqrt(mod.in_features))
            elif pname == "weight" and isinstance(mod, nn.Embedding):
                p.copy_(randn(p) / math.sqrt(mod.embedding_dim))
            elif pname == "weight" and isinstance(mod, nn.Conv1d):
                fan_in = (mod.in_channels // mod.groups) * mod.kernel_size[0]
                p.copy_(randn(p) / math.sqrt(fan_in))
            elif pname == "weight" and isinstance(mod, Conv1D):
                p.copy_(randn(p) / math.sqrt(p.shape[0]))
            elif pname == "weight" and p.dim() == 1:
                p.copy_(1.0 + 0.1 * randn(p))
            elif pname == "bias" and p.dim() == 1:
                p.copy_(0.1 * randn(p))


def param_table(model: nn.Module) -> tuple[dict[str, nn.Parameter], dict[str, str]]:
    """(canonical name -> parameter, alias name -> canonical name) for tied weights."""
    canon: dict[str, nn.Parameter] = dict(model.named_parameters())  # dedups tied params
    by_id = {id(p): n for n, p in canon.items()}
    alias = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        alias[n] = by_id[id(p)]
    return canon, alias


def torch_param_count(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def save_npz(path: str, arrays: dict[str, np.ndarray]) -> None:
    """np.savez-compatible, but byte-deterministic (fixed zip timestamps)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            zi = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_STORED
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, buf.getvalue())


def json_safe(x: Any) -> Any:
    """Strict JSON: non-finite floats become the strings "inf" / "-inf" / "nan"."""
    if isinstance(x, float) and not math.isfinite(x):
        return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    return x


def small_config_dict(cfg: transformers.PretrainedConfig) -> dict[str, Any]:
    d = json_safe(cfg.to_dict())  # full dict (not the diff): every field is explicit
    return json.loads(json.dumps(d, sort_keys=True, default=str, allow_nan=False))


def dim_strings(vi: onnx.ValueInfoProto) -> list[Any]:
    out: list[Any] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_param"):
            out.append(d.dim_param)
        elif d.HasField("dim_value"):
            out.append(int(d.dim_value))
        else:
            out.append(None)
    return out


def graph_summary(mp: onnx.ModelProto) -> dict[str, Any]:
    ops = collections.Counter()
    for n in mp.graph.node:
        key = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}"
        ops[key] += 1
    dyn = set()
    inputs, outputs = {}, {}
    for vi in mp.graph.input:
        dims = dim_strings(vi)
        inputs[vi.name] = {"dtype": onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type), "shape": dims}
        dyn.update(d for d in dims if isinstance(d, str))
    for vi in mp.graph.output:
        dims = dim_strings(vi)
        outputs[vi.name] = {"dtype": onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type), "shape": dims}
        dyn.update(d for d in dims if isinstance(d, str))
    return {
        "op_types": dict(sorted(ops.items())),
        "node_count": len(mp.graph.node),
        "opset_import": {(o.domain or "ai.onnx"): int(o.version) for o in mp.opset_import},
        "ir_version": int(mp.ir_version),
        "graph_inputs": inputs,
        "graph_outputs": outputs,
        "dim_params": sorted(dyn),
    }


# --------------------------------------------------------------------------
# export + post-processing
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Fixture:
    name: str
    hf_model: nn.Module  # the HF model (parameters are counted on it)
    wrapper: nn.Module  # module that is exported; has the HF model at .hf
    inputs: dict[str, torch.Tensor]  # ordered like wrapper.forward's flattened args
    args: tuple  # positional args for the wrapper
    dynamic_shapes: Any
    output_names: list[str]
    notes: list[str] = dataclasses.field(default_factory=list)
    extra_meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    meta_device: bool = False
    # meta-device only: CPU values for buffers (by HF name), dtype of params
    cpu_buffers: dict[str, torch.Tensor] | None = None
    expected_param_count: int | None = None
    external_location: str = "model.onnx.data"
    # extra (label, args) pairs at other dynamic sizes: onnxruntime must match torch there too
    alt_args: list[tuple[str, tuple]] = dataclasses.field(default_factory=list)


def torch_export_onnx(fx: Fixture) -> tuple[ir.Model, float]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = torch.onnx.export(
            fx.wrapper,
            fx.args,
            dynamo=True,
            opset_version=OPSET,
            optimize=False,
            input_names=list(fx.inputs),
            output_names=list(fx.output_names),
            dynamic_shapes=fx.dynamic_shapes,
            verbose=False,
        )
    return prog.model, time.perf_counter() - t0


def _strip(name: str) -> str:
    return name[len(WRAP_PREFIX):] if name.startswith(WRAP_PREFIX) else name


def postprocess_ir(model: ir.Model, fx: Fixture) -> onnx.ModelProto:
    """Optimize with weights protected, make initializers == torch parameters."""
    graph = model.graph
    canon, alias = param_table(fx.hf_model)

    # 1. rename wrapper-prefixed initializers to HF names; split params / others
    param_values: dict[str, ir.Value] = {}
    param_tensors: dict[str, Any] = {}
    for old in list(graph.initializers):
        v = graph.initializers.pop(old)
        new = _strip(old)
        if new in alias:
            cname = alias[new]
            if cname in param_values:
                raise RuntimeError(f"parameter {cname} exported twice ({old})")
            v.name = cname
            param_values[cname] = v
            param_tensors[cname] = v.const_value
            v.const_value = None
        else:
            v.name = new
            if fx.meta_device:
                if fx.cpu_buffers is None or new not in fx.cpu_buffers:
                    raise RuntimeError(
                        f"meta export: non-parameter initializer {old!r} has no CPU value; "
                        "add it to cpu_buffers"
                    )
                v.const_value = ir.tensor(fx.cpu_buffers[new].numpy(), name=new)
            graph.initializers[new] = v

    missing = set(canon) - set(param_values)
    if missing:
        raise RuntimeError(f"parameters not exported as initializers: {sorted(missing)}")

    # 2. params become (temporary) graph inputs -> the optimizer cannot fold/merge them
    n_user_inputs = len(graph.inputs)
    for cname in canon:
        graph.inputs.append(param_values[cname])

    onnxscript.optimizer.optimize_ir(model)

    # 3. params back to initializers
    for cname in canon:
        v = param_values[cname]
        assert v.name == cname, (v.name, cname)
        graph.inputs.remove(v)
    assert len(graph.inputs) == n_user_inputs
    offset = 0
    for cname, p in canon.items():
        v = param_values[cname]
        if fx.meta_device:
            dtype = {
                torch.bfloat16: ir.DataType.BFLOAT16,
                torch.float16: ir.DataType.FLOAT16,
                torch.float32: ir.DataType.FLOAT,
            }[p.dtype]
            nbytes = p.numel() * p.element_size()
            v.const_value = ir.ExternalTensor(
                fx.external_location,
                offset=offset,
                length=nbytes,
                dtype=dtype,
                shape=ir.Shape(list(p.shape)),
                name=cname,
                base_dir="",
            )
            offset += nbytes
        else:
            v.const_value = param_tensors[cname]
        graph.initializers[cname] = v

    mp = ir.serde.serialize_model(model)
    strip_metadata(mp)

    # 4. non-parameter initializers -> Constant nodes (same output name, same value)
    keep, consts = [], []
    for init in mp.graph.initializer:
        if init.name in canon:
            keep.append(init)
        else:
            node = onnx.helper.make_node("Constant", [], [init.name], name=f"Constant::{init.name}")
            t = onnx.TensorProto()
            t.CopyFrom(init)
            node.attribute.append(onnx.helper.make_attribute("value", t))
            consts.append(node)
    const_names = {n.output[0] for n in consts}
    nodes = list(mp.graph.node)
    del mp.graph.initializer[:]
    mp.graph.initializer.extend(keep)
    # graph inputs must not list the former initializers
    ins = [i for i in mp.graph.input if i.name not in const_names]
    del mp.graph.input[:]
    mp.graph.input.extend(ins)
    del mp.graph.node[:]
    mp.graph.node.extend(consts + nodes)
    return mp


KEEP_NODE_METADATA = {"namespace"}


def strip_metadata(mp: onnx.ModelProto) -> None:
    """Drop bulky / non-deterministic exporter annotations.

    ``pkg.torch.onnx.stack_trace`` contains ``<eval_with_key>.N`` counters that depend on what
    else ran in the process, and fx_node / class_hierarchy / name_scopes duplicate ``namespace``.
    Only the node ``namespace`` (module path, handy for debugging) is kept, with memory
    addresses removed.
    """
    for n in mp.graph.node:
        keep = [p for p in n.metadata_props if p.key in KEEP_NODE_METADATA]
        for p in keep:  # e.g. "<function sym_min at 0x7fb9c8b75260>" -> "<function sym_min>"
            p.value = re.sub(r" at 0x[0-9a-fA-F]+", "", p.value)
        del n.metadata_props[:]
        n.metadata_props.extend(keep)


def check_meta_model(mp: onnx.ModelProto, fx: Fixture) -> None:
    """onnx.checker for a graph whose EXTERNAL weight file does not exist.

    The C++ checker insists that an EXTERNAL tensor's location is a regular file (even for an
    in-memory proto), so the graph is checked twice without the real data file:

    1. a copy where every initializer is replaced by a graph input of the same name/dtype/shape
       (full_check=True: strict shape inference over the whole graph, no tensor data needed);
    2. the unmodified proto saved into a temporary directory next to an *empty* placeholder
       ``model.onnx.data`` (the checker only verifies that the location is a regular file inside
       the model directory; it never reads it).

    In addition every initializer's external_data entries are validated by hand.
    """
    import tempfile

    # (1) structure + shape inference
    probe = onnx.ModelProto()
    probe.CopyFrom(mp)
    inits = list(probe.graph.initializer)
    del probe.graph.initializer[:]
    for t in inits:
        probe.graph.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    onnx.checker.check_model(probe, full_check=True)
    # (2) the real proto, external references included
    with tempfile.TemporaryDirectory() as td:
        path = os.path.join(td, "model.onnx")
        onnx.save_model(mp, path)
        open(os.path.join(td, fx.external_location), "wb").close()
        onnx.checker.check_model(path, full_check=True)
    # (3) external_data entries
    end = 0
    for t in mp.graph.initializer:
        ext = {e.key: e.value for e in t.external_data}
        itemsize = {onnx.TensorProto.BFLOAT16: 2, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.FLOAT: 4}[t.data_type]
        want = int(np.prod(t.dims, dtype=np.int64)) * itemsize
        if t.data_location != onnx.TensorProto.EXTERNAL or t.HasField("raw_data"):
            raise RuntimeError(f"{t.name}: not a described-only EXTERNAL tensor")
        if ext.get("location") != fx.external_location or int(ext["offset"]) != end or int(ext["length"]) != want:
            raise RuntimeError(f"{t.name}: bad external_data {ext} (expected offset {end}, length {want})")
        end += want


def verify_initializers(mp: onnx.ModelProto, fx: Fixture) -> int:
    canon, _ = param_table(fx.hf_model)
    inits = {t.name: t for t in mp.graph.initializer}
    if set(inits) != set(canon):
        raise RuntimeError(
            f"initializers != parameters: extra={sorted(set(inits) - set(canon))} "
            f"missing={sorted(set(canon) - set(inits))}"
        )
    total = 0
    for name, p in canon.items():
        t = inits[name]
        if list(t.dims) != list(p.shape):
            raise RuntimeError(f"{name}: onnx dims {list(t.dims)} != torch {list(p.shape)}")
        total += int(np.prod(t.dims, dtype=np.int64))
        if fx.meta_device:
            if t.data_location != onnx.TensorProto.EXTERNAL:
                raise RuntimeError(f"{name} is not EXTERNAL")
        else:
            arr = onnx.numpy_helper.to_array(t)
            if not np.array_equal(arr, p.detach().numpy()):
                raise RuntimeError(f"{name}: initializer bytes differ from the torch parameter")
    if total != torch_param_count(fx.hf_model):
        raise RuntimeError(f"initializer elements {total} != torch params {torch_param_count(fx.hf_model)}")
    return total


def flatten_args(args: tuple) -> list[torch.Tensor]:
    flat: list[torch.Tensor] = []
    for a in args:
        if isinstance(a, (list, tuple)):
            flat.extend(a)
        else:
            flat.append(a)
    return flat


def torch_outputs(fx: Fixture, args: tuple) -> dict[str, np.ndarray]:
    with torch.no_grad():
        outs = fx.wrapper(*args)
    if isinstance(outs, torch.Tensor):
        outs = (outs,)
    assert len(outs) == len(fx.output_names), (len(outs), fx.output_names)
    return {n: o.detach().to(torch.float32).numpy() for n, o in zip(fx.output_names, outs)}


def compare(label: str, ref: dict[str, np.ndarray], got: dict[str, np.ndarray]) -> tuple[dict, dict]:
    diffs, rels = {}, {}
    for name, r in ref.items():
        g = got[name].astype(np.float32)
        if r.shape != g.shape:
            raise RuntimeError(f"{label}/{name}: ort shape {g.shape} != torch {r.shape}")
        d = float(np.max(np.abs(r - g))) if r.size else 0.0
        scale = float(np.max(np.abs(r))) if r.size else 1.0
        diffs[name] = d
        rels[name] = d / max(scale, 1e-12)
        if not np.all(np.isfinite(g)) or rels[name] > REL_TOL:
            raise RuntimeError(
                f"{label}/{name}: onnxruntime disagrees with torch: max abs diff {d:.3e}, "
                f"scale {scale:.3e}, rel {rels[name]:.3e} > {REL_TOL}"
            )
    return diffs, rels


def run_ort(mp: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(mp.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def export_fixture(fx: Fixture, out_root: str) -> dict[str, Any]:
    odir = os.path.join(out_root, fx.name)
    os.makedirs(odir, exist_ok=True)
    for stale in ("model.onnx", "inputs.npz", "outputs.npz", "meta.json", "model.onnx.data"):
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(odir, stale))

    # torch reference
    ref: dict[str, np.ndarray] = {}
    if not fx.meta_device:
        ref = torch_outputs(fx, fx.args)

    log(f"[{fx.name}] torch.onnx.export(dynamo=True, opset={OPSET}, optimize=False) ...")
    model, t_export = torch_export_onnx(fx)
    t0 = time.perf_counter()
    mp = postprocess_ir(model, fx)
    t_post = time.perf_counter() - t0
    log(f"[{fx.name}] export {t_export:.1f}s, optimize+postprocess {t_post:.1f}s")

    # ---- checks
    if fx.meta_device:
        check_meta_model(mp, fx)
    else:
        onnx.checker.check_model(mp, full_check=True)
    n_init = verify_initializers(mp, fx)
    if fx.expected_param_count is not None and n_init != fx.expected_param_count:
        raise RuntimeError(f"{fx.name}: {n_init} initializer elements, expected {fx.expected_param_count}")

    in_names = [i.name for i in mp.graph.input]
    out_names = [o.name for o in mp.graph.output]
    if in_names != list(fx.inputs):
        raise RuntimeError(f"graph inputs {in_names} != {list(fx.inputs)}")
    if out_names != list(fx.output_names):
        raise RuntimeError(f"graph outputs {out_names} != {fx.output_names}")

    summ = graph_summary(mp)
    meta: dict[str, Any] = {
        "fixture": fx.name,
        "hf_model_class": type(fx.hf_model).__name__,
        "config": small_config_dict(fx.hf_model.config),
        "attn_implementation": getattr(fx.hf_model.config, "_attn_implementation", None),
        "torch_parameter_count": torch_param_count(fx.hf_model),
        "initializer_elements": n_init,
        "initializers": {t.name: {"dtype": onnx.TensorProto.DataType.Name(t.data_type), "shape": list(t.dims)}
                         for t in mp.graph.initializer},
        "opset": OPSET,
        "exporter": "torch.onnx.export(dynamo=True, optimize=False) + onnxscript.optimizer.optimize_ir "
                    "with parameters protected; non-parameter initializers -> Constant nodes",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxscript": onnxscript.__version__,
            "onnx_ir": ir.__version__,
            "onnxruntime": ort.__version__,
        },
        **summ,
        "notes": fx.notes,
        **fx.extra_meta,
    }
    meta["torch_parameter_count_matches_initializers"] = meta["torch_parameter_count"] == n_init

    model_path = os.path.join(odir, "model.onnx")
    onnx.save_model(mp, model_path)  # for meta: protobuf has no weight bytes; EXTERNAL refs only

    if fx.meta_device:
        data_path = os.path.join(odir, fx.external_location)
        assert not os.path.exists(data_path), data_path
        # re-check the file from disk without loading external data
        mp2 = onnx.load(model_path, load_external_data=False)
        check_meta_model(mp2, fx)
        meta["external_data"] = {
            "location": fx.external_location,
            "exists": False,
            "total_bytes": int(sum(int(e.value) for t in mp2.graph.initializer
                                   for e in t.external_data if e.key == "length")),
        }
        meta["max_abs_diff_onnxruntime_vs_torch"] = None
    else:
        feeds = {k: v.detach().numpy() for k, v in fx.inputs.items()}
        mp2 = onnx.load(model_path)
        onnx.checker.check_model(mp2, full_check=True)
        got = run_ort(mp2, feeds)
        diffs, rels = compare(fx.name, ref, got)
        # the graph must really be dynamic: other batch / seq / past_len sizes
        alt = []
        for label, a in fx.alt_args:
            afeeds = {k: v.detach().numpy() for k, v in zip(in_names, flatten_args(a))}
            ad, _ = compare(f"{fx.name}[{label}]", torch_outputs(fx, a), run_ort(mp2, afeeds))
            alt.append({"shapes": label, "max_abs_diff": max(ad.values())})
        meta["dynamic_size_checks_onnxruntime_vs_torch"] = alt
        meta["max_abs_diff_onnxruntime_vs_torch"] = max(diffs.values())
        meta["max_abs_diff_per_output"] = diffs
        meta["max_rel_diff_per_output"] = rels
        meta["output_abs_max"] = {n: float(np.max(np.abs(ref[n]))) for n in out_names}
        meta["tolerance_rel_to_output_scale"] = REL_TOL
        save_npz(os.path.join(odir, "inputs.npz"), feeds)
        save_npz(os.path.join(odir, "outputs.npz"), ref)

    with open(os.path.join(odir, "meta.json"), "w") as f:
        json.dump(json_safe(meta), f, indent=2, sort_keys=True, allow_nan=False)
        f.write("\n")

    sizes = {fn: os.path.getsize(os.path.join(odir, fn)) for fn in sorted(os.listdir(odir))}
    for fn, sz in sizes.items():
        limit = 4_000_000 if (fx.meta_device and fn == "model.onnx") else MAX_TINY_FILE_BYTES
        if sz > limit:
            raise RuntimeError(f"{fx.name}/{fn} is {sz} bytes (> {limit})")
    log(f"[{fx.name}] ok: nodes={summ['node_count']} init_elems={n_init} "
        f"dims={summ['dim_params']} diff={meta['max_abs_diff_onnxruntime_vs_torch']} sizes={sizes}")
    return {"sizes": sizes, "export_s": t_export, "post_s": t_post}


# --------------------------------------------------------------------------
# wrappers
# --------------------------------------------------------------------------


class PrefillWrapper(nn.Module):
    """input_ids [+ attention_mask] -> logits, no cache."""

    def __init__(self, hf: nn.Module, with_mask: bool = True):
        super().__init__()
        self.hf = hf
        self.with_mask = with_mask

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
        kw = {"attention_mask": attention_mask} if self.with_mask else {}
        return self.hf(input_ids=input_ids, use_cache=False, **kw).logits


class DecodeWrapper(nn.Module):
    """One decode step with flat KV tensors; builds a DynamicCache inside forward."""

    def __init__(self, hf: nn.Module):
        super().__init__()
        self.hf = hf
        self.n_layers = hf.config.num_hidden_layers

    def forward(self, input_ids, attention_mask, position_ids, past_key_values: list[torch.Tensor]):
        from transformers.cache_utils import DynamicCache

        pairs = [(past_key_values[2 * i], past_key_values[2 * i + 1]) for i in range(self.n_layers)]
        cache = DynamicCache(ddp_cache_data=pairs, config=self.hf.config)
        out = self.hf(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            past_key_values=cache,
            use_cache=True,
        )
        present = []
        for layer in out.past_key_values.layers:
            present += [layer.keys, layer.values]
        return (out.logits, *present)


def prefill_inputs(vocab: int, batch: int, seq: int, seed: int, pad_last: int = 2):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, seq), generator=g, dtype=torch.int64)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    if batch > 1 and pad_last:
        mask[1, seq - pad_last:] = 0  # right padding on the 2nd row: no fully-masked query row
    return ids, mask


def prefill_fixture(name, hf, *, vocab, batch=2, seq=8, seed=0, with_mask=True, notes=(), extra=None,
                    alt_sizes=((1, 3), (1, 5), (3, 11))):
    hf.eval()
    wrapper = PrefillWrapper(hf, with_mask=with_mask).eval()
    ids, mask = prefill_inputs(vocab, batch, seq, seed + 1)
    B, S = torch.export.Dim("batch"), torch.export.Dim("seq")
    if with_mask:
        inputs = {"input_ids": ids, "attention_mask": mask}
        dyn = {"input_ids": {0: B, 1: S}, "attention_mask": {0: B, 1: S}}
        args = (ids, mask)
    else:
        inputs = {"input_ids": ids}
        dyn = {"input_ids": {0: B, 1: S}}
        args = (ids,)
    alt = []
    for b, s in alt_sizes:
        a_ids, a_mask = prefill_inputs(vocab, b, s, seed + 1000 + s)
        alt.append((f"batch={b},seq={s}", (a_ids, a_mask) if with_mask else (a_ids,)))
    return Fixture(name=name, hf_model=hf, wrapper=wrapper, inputs=inputs, args=args,
                   dynamic_shapes=dyn, output_names=["logits"], notes=list(notes),
                   extra_meta=dict(extra or {}), alt_args=alt)


def _compare_logits(m_a: nn.Module, m_b: nn.Module, ids, mask) -> float:
    with torch.no_grad():
        a = m_a(input_ids=ids, attention_mask=mask, use_cache=False).logits
        b = m_b(input_ids=ids, attention_mask=mask, use_cache=False).logits
    return float((a - b).abs().max())


# --------------------------------------------------------------------------
# fixture builders
# --------------------------------------------------------------------------

LLAMA3_ROPE_TINY = {
    "rope_type": "llama3",
    "rope_theta": 10000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    # tiny head_dim=16: wavelengths 6.3 (<8: kept), 19.9 (8..32: smoothed), >32 (scaled)
    "original_max_position_embeddings": 32,
}


def tiny_llama_config(**kw) -> transformers.LlamaConfig:
    base = dict(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
        rms_norm_eps=1e-5, rope_parameters=dict(LLAMA3_ROPE_TINY), tie_word_embeddings=False,
        use_cache=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    base.update(kw)
    cfg = transformers.LlamaConfig(**base)
    cfg._attn_implementation = "sdpa"
    return cfg


def build_llama() -> Fixture:
    seed_all(0)
    cfg = tiny_llama_config()
    hf = transformers.LlamaForCausalLM(cfg).eval()
    reinit_parameters(hf, seed=100)
    fx = prefill_fixture("llama", hf, vocab=cfg.vocab_size, seed=0)
    # show the llama3 RoPE scaling path matters
    cfg_plain = tiny_llama_config(rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    plain = transformers.LlamaForCausalLM(cfg_plain).eval()
    plain.load_state_dict(hf.state_dict(), strict=False)
    d = _compare_logits(hf, plain, *fx.args)
    if not d > 1e-3:
        raise RuntimeError(f"llama3 rope scaling has no effect (diff {d})")
    fx.extra_meta["llama3_rope_vs_default_rope_max_abs_logit_diff"] = d
    fx.notes.append("rope_parameters.rope_type=llama3 (transformers 5 name for rope_scaling); "
                    "original_max_position_embeddings=32 so head_dim=16 frequencies hit all three "
                    "llama3 branches (kept / smoothed / scaled by factor).")
    fx.notes.append("attention_mask row 1 is right-padded (last 2 positions 0).")
    return fx


def build_llama_decode() -> Fixture:
    seed_all(1)
    cfg = tiny_llama_config(use_cache=True)
    hf = transformers.LlamaForCausalLM(cfg).eval()
    reinit_parameters(hf, seed=101)
    n_layers, kvh, hd = cfg.num_hidden_layers, cfg.num_key_value_heads, cfg.head_dim

    def make(batch: int, past_len: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        ids = torch.randint(0, cfg.vocab_size, (batch, 1), generator=g, dtype=torch.int64)
        mask = torch.ones(batch, past_len + 1, dtype=torch.int64)
        if batch > 1:
            mask[1, 0] = 0  # row 1 is left-padded by one position
        position_ids = (mask.cumsum(-1) - 1)[:, -1:].clone()  # [[past_len], [past_len-1]]
        past = []
        for _ in range(n_layers):
            past.append(torch.randn(batch, kvh, past_len, hd, generator=g))
            past.append(torch.randn(batch, kvh, past_len, hd, generator=g))
        return ids, mask, position_ids, past

    ids, mask, position_ids, past = make(2, 5, 11)
    inputs = {"input_ids": ids, "attention_mask": mask, "position_ids": position_ids}
    for i in range(n_layers):
        inputs[f"past_key_values.{i}.key"] = past[2 * i]
        inputs[f"past_key_values.{i}.value"] = past[2 * i + 1]
    B, P = torch.export.Dim("batch"), torch.export.Dim("past_len")
    kv_spec = {0: B, 2: P}
    dyn = {
        "input_ids": {0: B},
        "attention_mask": {0: B, 1: P + 1},
        "position_ids": {0: B},
        "past_key_values": [kv_spec for _ in range(2 * n_layers)],
    }
    outputs = ["logits"]
    for i in range(n_layers):
        outputs += [f"present.{i}.key", f"present.{i}.value"]
    wrapper = DecodeWrapper(hf).eval()
    fx = Fixture(name="llama_decode", hf_model=hf, wrapper=wrapper, inputs=inputs,
                 args=(ids, mask, position_ids, past), dynamic_shapes=dyn, output_names=outputs,
                 alt_args=[("batch=1,past_len=3", make(1, 3, 12)), ("batch=3,past_len=9", make(3, 9, 13)),
                           ("batch=2,past_len=1", make(2, 1, 14))])
    fx.notes += [
        "One decode step: input_ids [batch,1], attention_mask [batch,past_len+1], position_ids [batch,1], "
        "past_key_values.{i}.key/value [batch,kv_heads,past_len,head_dim]; a DynamicCache is built inside "
        "forward; outputs logits [batch,1,vocab] and present.{i}.key/value [batch,kv_heads,past_len+1,head_dim].",
        "GQA: 4 query heads, 2 KV heads. Row 1 is left-padded (attention_mask[1,0]=0, position_ids=[[5],[4]]).",
        "Past K/V are random N(0,1) tensors (not produced by a prefill).",
    ]
    return fx


def build_qwen2() -> Fixture:
    seed_all(2)
    cfg = transformers.Qwen2Config(
        vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
        rms_norm_eps=1e-6, rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        tie_word_embeddings=False, use_cache=False, use_sliding_window=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=0,
    )
    cfg._attn_implementation = "sdpa"
    hf = transformers.Qwen2ForCausalLM(cfg).eval()
    reinit_parameters(hf, seed=102)
    assert hf.model.layers[0].self_attn.q_proj.bias is not None
    fx = prefill_fixture("qwen2", hf, vocab=cfg.vocab_size, seed=2,
                         notes=["q/k/v projections have biases (o_proj has none).",
                                "attention_mask row 1 is right-padded (last 2 positions 0)."])
    return fx


def build_mistral() -> Fixture:
    seed_all(3)
    window, seq = 3, 8

    def mk(sw):
        cfg = transformers.MistralConfig(
            vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
            rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
            sliding_window=sw, tie_word_embeddings=False, use_cache=False,
            bos_token_id=1, eos_token_id=2, pad_token_id=0,
        )
        cfg._attn_implementation = "sdpa"
        return cfg

    hf = transformers.MistralForCausalLM(mk(window)).eval()
    reinit_parameters(hf, seed=103)
    fx = prefill_fixture("mistral", hf, vocab=128, seq=seq, seed=3)
    nowin = transformers.MistralForCausalLM(mk(None)).eval()
    nowin.load_state_dict(hf.state_dict())
    d = _compare_logits(hf, nowin, *fx.args)
    if not d > 1e-3:
        raise RuntimeError(f"mistral sliding_window={window} does not change the logits (diff {d})")
    fx.extra_meta["sliding_window"] = window
    fx.extra_meta["sliding_window_vs_none_max_abs_logit_diff"] = d
    fx.notes += [
        f"sliding_window={window} < seq={seq}; with attn_implementation=sdpa transformers builds the "
        "sliding-window mask (create_sliding_window_causal_mask) and the logits differ from "
        f"sliding_window=None by {d:.4g} (max abs).",
        "attention_mask row 1 is right-padded (last 2 positions 0).",
    ]
    return fx


def build_gpt2() -> Fixture:
    seed_all(4)
    cfg = transformers.GPT2Config(
        vocab_size=128, n_positions=64, n_embd=64, n_layer=2, n_head=4, n_inner=None,
        activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5, use_cache=False, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=True,
    )
    cfg._attn_implementation = "sdpa"
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    reinit_parameters(hf, seed=104)
    return prefill_fixture("gpt2", hf, vocab=128, seed=4,
                           notes=["lm_head is tied to transformer.wte (one initializer).",
                                  "HF GPT2 uses Conv1D ([in, out] weights) and learned position embeddings.",
                                  "attention_mask row 1 is right-padded (last 2 positions 0)."])


def build_mamba2() -> Fixture:
    seed_all(5)
    cfg = transformers.Mamba2Config(
        vocab_size=128, hidden_size=32, num_hidden_layers=2, expand=2, num_heads=4, head_dim=16,
        n_groups=1, state_size=16, conv_kernel=4, chunk_size=4, use_cache=False,
        tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0,
        residual_in_fp32=True, use_bias=False, use_conv_bias=True,
    )
    hf = transformers.Mamba2ForCausalLM(cfg).eval()
    reinit_parameters(hf, seed=105)
    # seq=7 is deliberately NOT a multiple of chunk_size: mamba2_chunk_scan has a Python branch
    # `if pad_size > 0: output = output[:, :seq_len]`.  Exporting with seq % chunk_size == 0 makes
    # torch.export specialise that branch away *silently* (no constraint error), and the ONNX graph
    # then fails in onnxruntime for any other seq (Reshape error).  With seq=7 the pad + slice path
    # is traced; it is also correct when pad_size == 0 (zero padding, no-op slice), which the
    # extra sizes below (seq 4, 8, 12) check.
    return prefill_fixture("mamba2", hf, vocab=128, seq=7, seed=5, with_mask=False,
                           alt_sizes=((1, 3), (1, 5), (3, 11), (1, 4), (2, 8), (1, 12)),
                           notes=["pure-torch path: Mamba2Mixer.torch_forward with transformers' reference "
                                  "PyTorch mamba2_chunk_scan / causal_conv1d fallbacks (no CUDA kernels, "
                                  "mamba_ssm and causal_conv1d not installed); use_cache=False.",
                                  "chunk_size=4 and seq=7 (not a multiple) so the pad-to-chunk + slice path is "
                                  "traced; exporting with seq=8 silently specialises to seq % 4 == 0 "
                                  "(onnxruntime then fails for seq=5). Checked at seq 3,4,5,8,11,12.",
                                  "No attention_mask input (Mamba2 prefill without padding)."])


# --- llama3.1-8b on the meta device ------------------------------------------------


def llama31_8b_config() -> transformers.LlamaConfig:
    cfg = transformers.LlamaConfig(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, hidden_act="silu",
        max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                         "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192},
        attention_bias=False, mlp_bias=False, bos_token_id=128000, eos_token_id=128001,
        use_cache=False, dtype="bfloat16",
    )
    cfg._attn_implementation = "sdpa"
    return cfg


def build_llama31_8b_meta() -> Fixture:
    seed_all(6)
    cfg = llama31_8b_config()
    with torch.device("meta"):
        hf = transformers.LlamaForCausalLM._from_config(cfg, dtype=torch.bfloat16).eval()
    dtypes = {p.dtype for p in hf.parameters()}
    assert dtypes == {torch.bfloat16}, dtypes
    n = torch_param_count(hf)
    if n != LLAMA31_8B_PARAMS:
        raise RuntimeError(f"Llama-3.1-8B parameter count {n} != {LLAMA31_8B_PARAMS}")
    # real values of the (small, non-persistent) buffers, computed on CPU from the config
    rot_cpu = type(hf.model.rotary_emb)(config=cfg)
    cpu_buffers = {f"model.rotary_emb.{k}": v.detach().clone() for k, v in rot_cpu.named_buffers()}
    for bname, b in hf.named_buffers():
        if bname not in cpu_buffers:
            raise RuntimeError(f"no CPU value for meta buffer {bname}")
        assert cpu_buffers[bname].dtype == b.dtype and cpu_buffers[bname].shape == b.shape, bname
    batch, seq = 2, 8
    ids = torch.zeros(batch, seq, dtype=torch.int64, device="meta")
    mask = torch.ones(batch, seq, dtype=torch.int64, device="meta")
    B, S = torch.export.Dim("batch"), torch.export.Dim("seq")
    fx = Fixture(
        name="llama3.1-8b-meta", hf_model=hf, wrapper=PrefillWrapper(hf).eval(),
        inputs={"input_ids": ids, "attention_mask": mask}, args=(ids, mask),
        dynamic_shapes={"input_ids": {0: B, 1: S}, "attention_mask": {0: B, 1: S}},
        output_names=["logits"], meta_device=True, cpu_buffers=cpu_buffers,
        expected_param_count=LLAMA31_8B_PARAMS,
    )
    fx.notes += [
        "Full Llama-3.1-8B architecture built on torch.device('meta') in bf16; no weight bytes exist.",
        "Every initializer is a parameter with data_location=EXTERNAL pointing into 'model.onnx.data', "
        "which intentionally does not exist (offsets are the packed bf16 layout in named_parameters() order).",
        "Rotary inv_freq (fp32 buffer) was computed on CPU from the config and stored as a Constant node.",
        "No inputs.npz / outputs.npz; no onnxruntime check (no weights).",
    ]
    return fx


BUILDERS: dict[str, Callable[[], Fixture]] = {
    "llama": build_llama,
    "llama_decode": build_llama_decode,
    "qwen2": build_qwen2,
    "mistral": build_mistral,
    "gpt2": build_gpt2,
    "mamba2": build_mamba2,
    "llama3.1-8b-meta": build_llama31_8b_meta,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="+", choices=sorted(BUILDERS), help="export only these fixtures")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output root (default: tests/fixtures/hf)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    names = args.only or list(BUILDERS)
    report = {}
    for name in names:
        t0 = time.perf_counter()
        fx = BUILDERS[name]()
        report[name] = export_fixture(fx, args.out)
        report[name]["total_s"] = time.perf_counter() - t0
    log("\nsummary:")
    for name, r in report.items():
        log(f"  {name}: export {r['export_s']:.1f}s, postprocess {r['post_s']:.1f}s, total {r['total_s']:.1f}s")
        for fn, sz in r["sizes"].items():
            log(f"      {fn:14s} {sz:>10,d} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
