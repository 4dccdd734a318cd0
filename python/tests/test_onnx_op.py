"""tconv3d.onnx: ONNX Runtime with tconv3d's ConvTranspose against ONNX Runtime alone, on the same models.

The models are real torch.onnx.export exports (nn.ConvTranspose3d configs and
a small decoder) and the repository's ONNX fixtures. Skips, saying which
package is missing, without onnx, onnxruntime, onnxruntime-extensions or torch.
"""
import io
import logging
import re

import numpy as np
import pytest

from conftest import MODELS

onnx = pytest.importorskip("onnx", reason="tconv3d.onnx needs the onnx package (pip install onnx)")
ort = pytest.importorskip("onnxruntime", reason="tconv3d.onnx needs onnxruntime (pip install onnxruntime)")
pytest.importorskip("onnxruntime_extensions",
                    reason="tconv3d.onnx needs onnxruntime-extensions (pip install onnxruntime-extensions)")

import tconv3d  # noqa: E402
import tconv3d.onnx as tonnx  # noqa: E402
from tconv3d.onnx import _kernels  # noqa: E402


def torch_model(module, shape, dynamic=False, dtype=None):
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=dtype)
    f = io.BytesIO()
    axes = {"x": {0: "n", 2: "d", 3: "h", 4: "w"}, "y": {0: "n", 2: "od", 3: "oh", 4: "ow"}} if dynamic else None
    with torch.no_grad():
        torch.onnx.export(module.eval(), (x,), f, input_names=["x"], output_names=["y"], dynamo=False,
                          dynamic_axes=axes)
    return f.getvalue(), x.numpy()


def ort_alone(model_bytes, feeds):
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def builds():
    """Layers tconv3d has built (specialized) in this process: grows only when tconv3d runs a node."""
    return sum(op.builds for op in list(_kernels._ops.values()))


def assert_same(got, want):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


CONFIGS = [
    # (in, out, kernel, stride, padding, output_padding, dilation, bias, input shape)
    (8, 4, 3, 2, 1, 1, 1, True, (1, 8, 6, 7, 5)),
    (5, 6, 2, 2, 0, 0, 1, True, (2, 5, 4, 4, 3)),
    (4, 3, 3, 1, 1, 0, 1, False, (1, 4, 7, 5, 6)),
    (3, 5, 3, 1, 0, 0, 2, True, (1, 3, 5, 6, 4)),
    (6, 4, (1, 4, 4), (1, 2, 2), (0, 1, 1), 0, 1, True, (1, 6, 3, 8, 8)),
    (7, 3, (3, 2, 3), (3, 2, 1), (1, 0, 2), (2, 1, 0), 1, False, (2, 7, 3, 4, 5)),
    (4, 4, 4, 2, 1, 0, 1, True, (1, 4, 4, 4, 4)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"k{c[2]}s{c[3]}p{c[4]}op{c[5]}d{c[6]}b{int(c[7])}")
def test_conv_transpose_matches_onnxruntime(config):
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    cin, cout, k, s, p, op, d, bias, shape = config
    module = torch.nn.ConvTranspose3d(cin, cout, k, stride=s, padding=p, output_padding=op, dilation=d, bias=bias)
    model, x = torch_model(module, shape)
    want = ort_alone(model, {"x": x})[0]
    accelerated = tonnx.accelerate(model)
    assert len(tonnx.rewritten_nodes(accelerated)) == 1
    assert any(o.domain == tonnx.DOMAIN for o in accelerated.opset_import)
    before = builds()
    got = tonnx.session(accelerated, threads=1).run(None, {"x": x})[0]
    assert builds() == before + 1, "tconv3d did not run the node"
    assert got.shape == want.shape
    assert_same(got, want)


def test_decoder_with_relu_and_repeated_runs_pack_once():
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    nn = torch.nn
    decoder = nn.Sequential(
        nn.ConvTranspose3d(16, 8, 2, stride=2), nn.ReLU(),
        nn.ConvTranspose3d(8, 8, 3, stride=1, padding=1), nn.ReLU(),
        nn.ConvTranspose3d(8, 2, 3, stride=2, padding=1, output_padding=1))
    model, x = torch_model(decoder, (2, 16, 3, 4, 3))
    want = ort_alone(model, {"x": x})[0]
    skipped = []
    accelerated = tonnx.accelerate(model, skipped=skipped)
    assert skipped == []
    assert len(tonnx.rewritten_nodes(accelerated)) == 3
    assert sum(n.op_type == "Relu" for n in accelerated.graph.node) == 2
    sess = tonnx.session(accelerated, threads=2)
    before = builds()
    for _ in range(3):
        assert_same(sess.run(None, {"x": x})[0], want)
    assert builds() == before + 3, "each layer is specialized and packed once, not per run"


def test_dynamic_shapes_run_and_each_shape_builds_once():
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    module = torch.nn.ConvTranspose3d(4, 3, 3, stride=2, padding=1, output_padding=1)
    model, _ = torch_model(module, (1, 4, 4, 4, 4), dynamic=True)
    sess = tonnx.session(model, threads=1)
    rng = np.random.default_rng(3)
    before = builds()
    for shape in [(1, 4, 4, 4, 4), (3, 4, 5, 2, 6), (1, 4, 4, 4, 4)]:
        x = rng.standard_normal(shape).astype(np.float32)
        assert_same(sess.run(None, {"x": x})[0], ort_alone(model, {"x": x})[0])
    assert builds() == before + 2


def test_results_of_earlier_runs_stay_intact():
    # The op computes into one reused array per shape and thread; what a run
    # returned must not change with the next run.
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    model, x = torch_model(torch.nn.ConvTranspose3d(3, 2, 2, stride=2), (1, 3, 3, 3, 3))
    sess = tonnx.session(model, threads=1)
    first = sess.run(None, {"x": x})[0]
    kept = first.copy()
    second = sess.run(None, {"x": 2 * x})[0]
    np.testing.assert_array_equal(first, kept)
    assert_same(second, 2 * kept - ort_alone(model, {"x": np.zeros_like(x)})[0])


def test_unsupported_nodes_stay_on_onnxruntime():
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    grouped, x = torch_model(torch.nn.ConvTranspose3d(4, 4, 3, groups=2), (1, 4, 3, 3, 3))
    skipped = []
    accelerated = tonnx.accelerate(grouped, skipped=skipped)
    assert tonnx.rewritten_nodes(accelerated) == []
    assert len(skipped) == 1 and "group" in skipped[0][1]
    assert_same(tonnx.session(grouped).run(None, {"x": x})[0], ort_alone(grouped, {"x": x})[0])

    double, xd = torch_model(torch.nn.ConvTranspose3d(3, 2, 3).double(), (1, 3, 3, 3, 3),
                             dtype=torch.float64)
    skipped = []
    assert tonnx.rewritten_nodes(tonnx.accelerate(double, skipped=skipped)) == []
    assert "float32" in skipped[0][1]


def test_weights_fed_at_run_time_stay_on_onnxruntime():
    from onnx import TensorProto, helper

    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], strides=[2, 2, 2])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3, 3]),
                                            helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 3, 2, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    skipped = []
    assert tonnx.rewritten_nodes(tonnx.accelerate(model, skipped=skipped)) == []
    assert "initializer" in skipped[0][1]


def fixture_input(path, sess):
    """An input for a fixture model: its io.npz input that fits the model's first input."""
    data = np.load(path.with_suffix(".io.npz"))
    first = sess.get_inputs()[0]
    for key in data.files:
        if key.endswith(":in"):
            try:
                sess.run(None, {first.name: data[key]})
                return {first.name: data[key]}
            except Exception:  # noqa: BLE001 - this array is another layer's input
                continue
    pytest.fail(f"{path.name}: no input in {path.with_suffix('.io.npz').name} fits the model")


ONNX_FIXTURES = sorted(p for p in MODELS.glob("onnx_*.onnx"))


@pytest.mark.parametrize("path", ONNX_FIXTURES, ids=lambda p: p.stem)
def test_repository_onnx_fixtures(path):
    reference = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = fixture_input(path, reference)
    want = reference.run(None, feeds)
    accelerated = tonnx.accelerate(path)
    assert tonnx.rewritten_nodes(accelerated), "no node was moved to tconv3d"
    before = builds()
    got = tonnx.session(accelerated, threads=1).run(None, feeds)
    assert builds() > before
    for g, w in zip(got, want):
        assert_same(g, w)


def test_grouped_fixture_is_left_alone():
    skipped = []
    accelerated = tonnx.accelerate(MODELS / "bad_onnx_grouped.onnx", skipped=skipped)
    assert tonnx.rewritten_nodes(accelerated) == []
    assert skipped and "group" in skipped[0][1]


def test_not_a_model_raises():
    with pytest.raises(tconv3d.Error, match="not a serialized ONNX model"):
        tonnx.accelerate(b"\xff\x00 certainly not protobuf \x12\x34")
    with pytest.raises(tconv3d.Error, match="no such file"):
        tonnx.accelerate("/nonexistent/model.onnx")
    with pytest.raises(TypeError, match="model"):
        tonnx.accelerate(42)
    with pytest.raises(tconv3d.Error, match="threads"):
        tonnx.accelerate(MODELS / "onnx_same_upper.onnx", threads=-1)


def test_wrong_input_shape_is_an_onnxruntime_error():
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    model, x = torch_model(torch.nn.ConvTranspose3d(4, 3, 3, stride=2, padding=1), (1, 4, 4, 4, 4))
    sess = tonnx.session(model)
    with pytest.raises(Exception, match="(?i)dimension|shape|rank"):
        sess.run(None, {"x": np.zeros((1, 5, 4, 4, 4), np.float32)})
    with pytest.raises(Exception, match="(?i)rank|dimension"):
        sess.run(None, {"x": np.zeros((1, 4, 4, 4), np.float32)})
    assert_same(sess.run(None, {"x": x})[0], ort_alone(model, {"x": x})[0])  # the session still works


def test_shape_tconv3d_cannot_run_goes_to_onnxruntime(caplog):
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    # padding 2 with kernel 3: the output is 2 smaller than the input, so a
    # size-1 axis has no output; ONNX Runtime's own kernel gives the error.
    model, x = torch_model(torch.nn.ConvTranspose3d(2, 2, 3, padding=2), (1, 2, 4, 4, 4), dynamic=True)
    sess = tonnx.session(model)
    assert_same(sess.run(None, {"x": x})[0], ort_alone(model, {"x": x})[0])
    small = np.zeros((1, 2, 1, 4, 4), np.float32)
    with caplog.at_level(logging.WARNING, logger="tconv3d.onnx"):
        with pytest.raises(Exception) as ours:
            sess.run(None, {"x": small})
    with pytest.raises(Exception) as theirs:
        ort_alone(model, {"x": small})
    assert type(ours.value) is type(theirs.value) and str(ours.value)
    assert any("own ConvTranspose" in r.getMessage() for r in caplog.records)


def test_saved_model_in_a_fresh_process_falls_back_until_registered(tmp_path):
    torch = pytest.importorskip("torch", reason="the export tests need torch")
    model, x = torch_model(torch.nn.ConvTranspose3d(3, 2, 2, stride=2), (1, 3, 3, 3, 3))
    want = ort_alone(model, {"x": x})[0]
    path = tmp_path / "accelerated.onnx"
    onnx.save(tonnx.accelerate(model), path)
    tonnx.clear_cache()  # as a process that never saw the original model
    so = ort.SessionOptions()
    so.register_custom_ops_library(tonnx.custom_ops_library())
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    before = builds()
    assert_same(sess.run(None, {"x": x})[0], want)
    assert builds() == before, "unregistered weights: ONNX Runtime's kernel ran"
    assert tonnx.register(path) == 1
    assert_same(sess.run(None, {"x": x})[0], want)
    assert builds() == before + 1


def test_other_python_ops_keep_working():
    # tconv3d.onnx installs its own onnxruntime-extensions hook; a Python op
    # of someone else's must still run through the default one.
    from onnx import TensorProto, helper
    from onnxruntime_extensions import PyCustomOpDef, onnx_op

    @onnx_op(op_type="Tconv3dTestNegate", inputs=[PyCustomOpDef.dt_float], outputs=[PyCustomOpDef.dt_float])
    def negate(x):
        return -x

    node = helper.make_node("Tconv3dTestNegate", ["x"], ["y"], domain=tonnx.DOMAIN)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(tonnx.DOMAIN, 1)])
    so = ort.SessionOptions()
    so.register_custom_ops_library(tonnx.custom_ops_library())
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(sess.run(None, {"x": np.array([1, -2], np.float32)})[0], [-1, 2])


def test_bench_command_runs():
    pytest.importorskip("torch", reason="the benchmark exports its models with torch")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "tconv3d.bench.onnx", "--layers", "k3s2_op1_odd", "--threads", "1",
                             "--min-time", "0", "--no-model"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"k3s2_op1_odd\s+1\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+x", result.stdout), result.stdout
    assert "geomean" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "tconv3d.bench.onnx", "--layers", "no_such_layer"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "no_such_layer" in bad.stderr
