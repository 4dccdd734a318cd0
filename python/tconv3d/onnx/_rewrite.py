"""accelerate(): moves each 5-D ConvTranspose tconv3d can run into the ready/If structure of _kernels.py."""
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from tconv3d import Error
from tconv3d.onnx import _kernels


def load(model, argument="model"):
    """A ModelProto from a path, serialized bytes or a ModelProto (copied, never changed in place)."""
    if isinstance(model, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        return copy
    if isinstance(model, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(model))
        except Exception as e:  # protobuf's DecodeError and friends
            raise Error(f"{argument}: not a serialized ONNX model: {e}") from e
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise Error(f"{argument}: no such file: {path}")
        try:
            proto = onnx.load(path)
        except Exception as e:
            raise Error(f"{argument}: {path} is not an ONNX model: {e}") from e
        if not proto.HasField("graph"):
            raise Error(f"{argument}: {path} is not an ONNX model (no graph)")
        return proto
    raise TypeError(f"{argument}: expected a path, bytes or an onnx.ModelProto, got {type(model).__name__}")


def _attribute(a):
    """An AttributeProto as _core.OnnxConvTranspose takes it: (name, type, i, s, ints)."""
    s = a.s.decode("utf-8", "replace") if a.type == onnx.AttributeProto.STRING else ""
    return (a.name, int(a.type), int(a.i), s, [int(v) for v in a.ints])


def _constants(graph):
    """name -> NumPy array of the graph's initializers that no graph input can override."""
    inputs = {i.name for i in graph.input}
    out = {}
    for t in graph.initializer:
        if t.name not in inputs:
            out[t.name] = t
    return out


def _node_parts(node, constants):
    """(attributes, weight, bias, key) of a ConvTranspose tconv3d could take, or a reason string."""
    if node.op_type != "ConvTranspose" or node.domain not in ("", "ai.onnx"):
        return None
    if len(node.input) < 2 or not node.input[1]:
        return "ConvTranspose without a weight input"
    w = constants.get(node.input[1])
    if w is None:
        return f"weight '{node.input[1]}' is not an initializer (computed or fed at run time)"
    if len(w.dims) != 5:
        return f"weight rank {len(w.dims)}: not a 3D ConvTranspose"
    if w.data_type != onnx.TensorProto.FLOAT:
        return f"weight type {onnx.TensorProto.DataType.Name(w.data_type)}: tconv3d runs float32 only"
    b = None
    if len(node.input) >= 3 and node.input[2]:
        b = constants.get(node.input[2])
        if b is None:
            return f"bias '{node.input[2]}' is not an initializer"
        if b.data_type != onnx.TensorProto.FLOAT:
            return "bias is not float32"
    try:
        weight = numpy_helper.to_array(w).astype(np.float32, copy=False)
        bias = None if b is None else numpy_helper.to_array(b).astype(np.float32, copy=False)
    except Exception as e:  # external data that is missing, a truncated tensor
        return f"weights unreadable: {e}"
    attributes = [_attribute(a) for a in node.attribute]
    try:
        _kernels.make_op(attributes, weight, bias, 1)  # the loader's checks: group, pads, shapes
    except (Error, ValueError, TypeError) as e:
        return str(e)
    return attributes, weight, bias, _kernels.weight_key(node.input[1], attributes, weight, bias)


def _unique(names, base):
    name, k = base, 1
    while name in names:
        name, k = f"{base}_{k}", k + 1
    names.add(name)
    return name


def accelerate(model, threads=0, skipped=None):
    """See tconv3d.onnx.accelerate."""
    proto = load(model)
    if int(threads) < 0:
        raise Error(f"threads: must be >= 0, got {threads}")
    graph = proto.graph
    constants = _constants(graph)
    names = {n.name for n in graph.node} | {o for n in graph.node for o in n.output}
    names |= {i.name for i in graph.input} | {t.name for t in graph.initializer}
    nodes, rewritten = [], 0
    for index, node in enumerate(graph.node):
        parts = _node_parts(node, constants)
        if parts is None:
            nodes.append(node)
            continue
        label = node.name or f"ConvTranspose_{index}"
        if isinstance(parts, str):
            if skipped is not None:
                skipped.append((label, parts))
            nodes.append(node)
            continue
        attributes, weight, bias, key = parts
        _kernels.register(key, attributes, weight, bias)
        nodes.extend(_replacement(node, label, key, int(threads), names))
        rewritten += 1
    if rewritten:
        del graph.node[:]
        graph.node.extend(nodes)
        if not any(o.domain == _kernels.DOMAIN for o in proto.opset_import):
            proto.opset_import.append(helper.make_opsetid(_kernels.DOMAIN, 1))
    return proto


def _replacement(node, label, key, threads, names):
    x, y = node.input[0], node.output[0]
    shape = _unique(names, f"{label}/tconv3d_shape")
    ok = _unique(names, f"{label}/tconv3d_ready")
    y_then = _unique(names, f"{label}/tconv3d_y")
    y_else = _unique(names, f"{label}/ort_y")
    attrs = {"key": key, "threads": str(threads)}
    then_branch = helper.make_graph(
        [helper.make_node(_kernels.CONV_OP, [x], [y_then], name=_unique(names, f"{label}/tconv3d"),
                          domain=_kernels.DOMAIN, **attrs)],
        f"{label}_tconv3d", [], [helper.make_tensor_value_info(y_then, onnx.TensorProto.FLOAT, None)])
    # The original node, attributes and all, for what tconv3d does not run.
    original = onnx.NodeProto()
    original.CopyFrom(node)
    del original.output[:]
    original.output.append(y_else)
    original.name = _unique(names, f"{label}/onnxruntime")
    else_branch = helper.make_graph(
        [original], f"{label}_onnxruntime", [],
        [helper.make_tensor_value_info(y_else, onnx.TensorProto.FLOAT, None)])
    return [
        helper.make_node("Shape", [x], [shape], name=_unique(names, f"{label}/tconv3d_shape_op")),
        helper.make_node(_kernels.READY_OP, [shape], [ok], name=_unique(names, f"{label}/tconv3d_ready_op"),
                         domain=_kernels.DOMAIN, **attrs),
        helper.make_node("If", [ok], [y], name=node.name or _unique(names, label),
                         then_branch=then_branch, else_branch=else_branch),
    ]


def register(model):
    """Registers the weights of every node accelerate() rewrote in `model` (for a fresh process)."""
    proto = load(model)
    constants = _constants(proto.graph)
    count = 0
    for node in proto.graph.node:
        if node.op_type != "If":
            continue
        branches = {a.name: a.g for a in node.attribute if a.type == onnx.AttributeProto.GRAPH}
        then_g, else_g = branches.get("then_branch"), branches.get("else_branch")
        if then_g is None or else_g is None or len(then_g.node) != 1 or len(else_g.node) != 1:
            continue
        ours = then_g.node[0]
        if ours.domain != _kernels.DOMAIN or ours.op_type != _kernels.CONV_OP:
            continue
        key = next((a.s.decode() for a in ours.attribute if a.name == "key"), "")
        parts = _node_parts(else_g.node[0], constants)
        # A key that no longer matches the weights (edited after accelerate)
        # stays unregistered: ONNX Runtime's kernel then runs the node.
        if isinstance(parts, tuple) and parts[3] == key:
            _kernels.register(key, *parts[:3])
            count += 1
    return count


def rewritten_nodes(model):
    """Names of the If nodes whose then-branch runs tconv3d."""
    proto = load(model)
    out = []
    for node in proto.graph.node:
        for a in node.attribute:
            if a.name == "then_branch" and any(n.domain == _kernels.DOMAIN and n.op_type == _kernels.CONV_OP
                                               for n in a.g.node):
                out.append(node.name)
    return out
