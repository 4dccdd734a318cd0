"""tconv3d.torch against torch.nn.functional.conv_transpose3d: values, gradients, memory formats,
the registered op (opcheck, torch.compile, torch.export), the module, the weight cache, bad input, fallbacks."""
import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import tconv3d.torch as tt  # noqa: E402

CL = torch.channels_last_3d


@pytest.fixture(autouse=True)
def _without_tensorflow():
    # TensorFlow and triton (torch._dynamo imports it; custom ops and torch.compile load that) register
    # the same LLVM options, and the second to load aborts the process. scripts/test-python.sh runs
    # this file in its own session.
    if "tensorflow" in sys.modules and "torch._dynamo" not in sys.modules:
        pytest.skip("TensorFlow is loaded in this process; run this file in its own pytest session")


def random_case(rng):
    """A random valid PyTorch conv_transpose3d call: (x, weight, bias, kwargs)."""
    while True:
        stride = [int(v) for v in rng.integers(1, 4, size=3)]
        dilation = [int(v) for v in rng.integers(1, 3, size=3)]
        kernel = [int(v) for v in rng.integers(1, 5, size=3)]
        output_padding = [int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation)]
        padding = [int(rng.integers(0, d * (k - 1) + 1)) for d, k in zip(dilation, kernel)]
        spatial = [int(v) for v in rng.integers(1, 7, size=3)]
        out = [(i - 1) * s - 2 * p + d * (k - 1) + op + 1
               for i, s, p, d, k, op in zip(spatial, stride, padding, dilation, kernel, output_padding)]
        if min(out) > 0:
            break
    cin, cout, batch = int(rng.integers(1, 14)), int(rng.integers(1, 14)), int(rng.integers(1, 4))
    x = torch.from_numpy(rng.standard_normal([batch, cin] + spatial).astype(np.float32))
    if rng.random() < 0.5:
        x = x.contiguous(memory_format=CL)
    w = torch.from_numpy((rng.standard_normal([cin, cout] + kernel) * 0.3).astype(np.float32))
    b = torch.from_numpy(rng.standard_normal(cout).astype(np.float32)) if rng.random() < 0.8 else None
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, dilation=dilation)
    return x, w, b, kwargs


def assert_matches_float64(y, x, w, b, kwargs):
    """y against PyTorch in float64, with a tolerance that grows with the reduction's length and magnitude."""
    d = lambda t: None if t is None else t.double()  # noqa: E731
    ref = F.conv_transpose3d(d(x), d(w), d(b), **kwargs)
    scale = F.conv_transpose3d(d(x).abs(), d(w).abs(), None if b is None else d(b).abs(), **kwargs)
    terms = w.shape[0] * math.prod(w.shape[2:])
    tol = 4 * 2.0**-24 * math.sqrt(terms) * scale + 1e-6
    assert y.shape == ref.shape
    assert y.dtype == torch.float32
    bad = (y.double() - ref).abs() > tol
    assert not bad.any(), f"{int(bad.sum())} outputs off; max error {(y.double() - ref).abs().max().item():.3g}"


def expected_format(x, w):
    def cl_only(t):
        return not t.is_contiguous() and t.is_contiguous(memory_format=CL)
    return CL if cl_only(x) or cl_only(w) else torch.contiguous_format


@pytest.mark.parametrize("chunk", range(10))
def test_random_configs_match_torch_in_float64(chunk):
    rng = np.random.default_rng(1000 + chunk)
    for _ in range(30):  # 300 configurations in all
        x, w, b, kwargs = random_case(rng)
        before = tt.cache_stats()["layers"]
        y = tt.conv_transpose3d(x, w, b, **kwargs)
        assert tt.cache_stats()["layers"] == before + 1, f"tconv3d did not run {tuple(x.shape)} {kwargs}"
        assert_matches_float64(y, x, w, b, kwargs)
        assert y.is_contiguous(memory_format=expected_format(x, w))


def test_memory_formats_in_and_out():
    rng = np.random.default_rng(5)
    x = torch.from_numpy(rng.standard_normal((2, 6, 4, 5, 3)).astype(np.float32))
    w = torch.from_numpy(rng.standard_normal((6, 5, 3, 3, 3)).astype(np.float32))
    kwargs = dict(stride=2, padding=1, output_padding=1)
    y = tt.conv_transpose3d(x, w, **kwargs)
    assert y.is_contiguous() and not y.is_contiguous(memory_format=CL)
    y_cl = tt.conv_transpose3d(x.contiguous(memory_format=CL), w, **kwargs)
    assert y_cl.is_contiguous(memory_format=CL) and not y_cl.is_contiguous()
    # A channels_last weight makes the output channels_last, as PyTorch's CPU kernel does for batch > 1.
    y_wcl = tt.conv_transpose3d(x, w.contiguous(memory_format=CL), **kwargs)
    assert y_wcl.is_contiguous(memory_format=CL)
    assert F.conv_transpose3d(x, w.contiguous(memory_format=CL), **kwargs).is_contiguous(memory_format=CL)
    assert F.conv_transpose3d(x.contiguous(memory_format=CL), w, **kwargs).is_contiguous(memory_format=CL)
    for out in (y_cl, y_wcl):
        torch.testing.assert_close(out, y, rtol=0, atol=1e-5)
    # Neither layout (a strided slice): copied once, same values.
    big = torch.from_numpy(rng.standard_normal((2, 6, 8, 5, 3)).astype(np.float32))
    sliced = big[:, :, ::2]
    assert_matches_float64(tt.conv_transpose3d(sliced, w, **kwargs), sliced, w, None, kwargs)


def test_unbatched_input():
    rng = np.random.default_rng(6)
    x = torch.from_numpy(rng.standard_normal((3, 4, 5, 6)).astype(np.float32))
    w = torch.from_numpy(rng.standard_normal((3, 2, 2, 3, 2)).astype(np.float32))
    b = torch.ones(2)
    y = tt.conv_transpose3d(x, w, b, stride=(2, 1, 3), padding=(0, 1, 0))
    assert_matches_float64(y, x, w, b, dict(stride=(2, 1, 3), padding=(0, 1, 0)))


@pytest.mark.parametrize("seed", range(8))
def test_gradients_match_torch(seed):
    rng = np.random.default_rng(200 + seed)
    x, w, b, kwargs = random_case(rng)
    leaves = [t.detach().clone().requires_grad_() for t in (x, w) + (() if b is None else (b,))]
    theirs = [t.detach().double().requires_grad_() for t in leaves]
    dy = torch.from_numpy(rng.standard_normal(F.conv_transpose3d(x, w, b, **kwargs).shape).astype(np.float32))
    y = tt.conv_transpose3d(leaves[0], leaves[1], leaves[2] if b is not None else None, **kwargs)
    ref = F.conv_transpose3d(theirs[0], theirs[1], theirs[2] if b is not None else None, **kwargs)
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4)
    grads = torch.autograd.grad(y, leaves, dy)
    ref_grads = torch.autograd.grad(ref, theirs, dy.double())
    for name, g, r in zip(("input", "weight", "bias"), grads, ref_grads):
        assert g.shape == r.shape, name
        scale = max(1.0, r.abs().max().item())
        assert (g.double() - r).abs().max().item() / scale < 1e-4, name


def test_gradcheck_in_float64_goes_through_the_op():
    # float64 runs PyTorch's own forward; the registered backward is still ours.
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.standard_normal((2, 2, 2, 3, 2))).requires_grad_()
    w = torch.from_numpy(rng.standard_normal((2, 3, 2, 2, 3))).requires_grad_()
    b = torch.from_numpy(rng.standard_normal(3)).requires_grad_()

    def f(x, w, b):
        return tt.conv_transpose3d_op(x, w, b, [2, 1, 2], [0, 1, 1], [1, 0, 1], 1, [1, 1, 1])
    assert torch.autograd.gradcheck(f, (x, w, b))
    assert torch.autograd.gradgradcheck(f, (x, w, b))


@pytest.mark.parametrize("channels_last,with_bias,unbatched", [(False, True, False), (True, False, False),
                                                               (False, False, True)])
def test_opcheck(channels_last, with_bias, unbatched):
    rng = np.random.default_rng(8)
    x = torch.from_numpy(rng.standard_normal((2, 3, 3, 4, 5)).astype(np.float32))
    if channels_last:
        x = x.contiguous(memory_format=CL)
    if unbatched:
        x = x[0]
    w = torch.from_numpy(rng.standard_normal((3, 5, 3, 2, 3)).astype(np.float32)).requires_grad_()
    b = torch.zeros(5, requires_grad=True) if with_bias else None
    args = (x.requires_grad_(), w, b, [2, 1, 3], [1, 0, 1], [1, 0, 2], 1, [1, 2, 1])
    torch.library.opcheck(torch.ops.tconv3d.conv_transpose3d, args)


def test_torch_compile_fullgraph_calls_the_op():
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm.code)
        return gm.forward

    rng = np.random.default_rng(9)
    x = torch.from_numpy(rng.standard_normal((2, 4, 3, 4, 5)).astype(np.float32))
    w = torch.from_numpy(rng.standard_normal((4, 6, 3, 3, 3)).astype(np.float32))
    b = torch.from_numpy(rng.standard_normal(6).astype(np.float32))

    def f(x, w, b):
        return torch.relu(tt.conv_transpose3d(x, w, b, stride=2, padding=1, output_padding=1))

    torch._dynamo.reset()
    y = torch.compile(f, fullgraph=True, backend=backend)(x, w, b)
    assert any("tconv3d.conv_transpose3d" in g for g in graphs), graphs
    torch.testing.assert_close(y, torch.relu(F.conv_transpose3d(x, w, b, stride=2, padding=1, output_padding=1)),
                               rtol=1e-5, atol=1e-5)
    # And through Inductor, with a gradient.
    torch._dynamo.reset()
    wg = w.clone().requires_grad_()
    yc = torch.compile(f, fullgraph=True)(x, wg, b)
    yc.sum().backward()
    wr = w.clone().requires_grad_()
    f(x, wr, b).sum().backward()
    torch.testing.assert_close(yc, y, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(wg.grad, wr.grad, rtol=1e-4, atol=1e-4)


def test_torch_export_keeps_the_op():
    torch.manual_seed(0)
    m = tt.ConvTranspose3d(4, 3, kernel_size=(2, 3, 3), stride=(2, 1, 2), padding=(0, 1, 1), output_padding=(1, 0, 1))
    x = torch.randn(2, 4, 3, 4, 5)
    ep = torch.export.export(m, (x,))
    assert "tconv3d.conv_transpose3d" in ep.graph_module.code
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(x), m(x), rtol=0, atol=0)
        plain = nn.ConvTranspose3d(4, 3, kernel_size=(2, 3, 3), stride=(2, 1, 2), padding=(0, 1, 1),
                                   output_padding=(1, 0, 1))
        plain.load_state_dict(m.state_dict())
        torch.testing.assert_close(ep.module()(x), plain(x), rtol=1e-5, atol=1e-5)


def test_module_state_dict_round_trip_and_output_size():
    torch.manual_seed(1)
    plain = nn.ConvTranspose3d(5, 7, 3, stride=2, padding=1, dilation=1, bias=True)
    ours = tt.ConvTranspose3d(5, 7, 3, stride=2, padding=1, dilation=1, bias=True)
    assert isinstance(ours, nn.ConvTranspose3d)
    assert set(ours.state_dict()) == set(plain.state_dict())
    ours.load_state_dict(plain.state_dict())
    x = torch.randn(2, 5, 4, 5, 6)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), plain(x), rtol=1e-5, atol=1e-5)
        for size in ([7, 9, 11], [8, 10, 12], (2, 7, 8, 9, 12)):
            torch.testing.assert_close(ours(x, output_size=size), plain(x, output_size=size), rtol=1e-5, atol=1e-5)
        with pytest.raises(ValueError):
            plain(x, output_size=[20, 9, 11])
        with pytest.raises(ValueError):
            ours(x, output_size=[20, 9, 11])
    back = nn.ConvTranspose3d(5, 7, 3, stride=2, padding=1)
    back.load_state_dict(ours.state_dict())
    assert torch.equal(back.weight, plain.weight)


def test_accelerate_swaps_in_place():
    torch.manual_seed(2)

    class Custom(nn.ConvTranspose3d):
        pass

    decoder = nn.Sequential(
        nn.ConvTranspose3d(16, 8, 2, stride=2), nn.ReLU(),
        nn.Sequential(nn.ConvTranspose3d(8, 4, 3, stride=2, padding=1, output_padding=1), nn.ReLU()),
        Custom(4, 4, 1), nn.ConvTranspose3d(4, 1, 3, padding=1, bias=False))
    x = torch.randn(2, 16, 3, 4, 5)
    with torch.no_grad():
        expected = decoder(x)
    params = list(decoder.parameters())
    assert tt.accelerate(decoder) is decoder
    assert [type(m) for m in decoder.modules() if isinstance(m, nn.ConvTranspose3d)] == [
        tt.ConvTranspose3d, tt.ConvTranspose3d, Custom, tt.ConvTranspose3d]
    assert all(a is b for a, b in zip(params, decoder.parameters()))
    before = tt.cache_stats()["layers"]
    with torch.no_grad():
        torch.testing.assert_close(decoder(x), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(decoder(x.contiguous(memory_format=CL)), expected, rtol=1e-4, atol=1e-5)
    assert tt.cache_stats()["layers"] > before
    single = nn.ConvTranspose3d(2, 2, 1)
    assert type(tt.accelerate(single)) is tt.ConvTranspose3d
    with pytest.raises(TypeError):
        tt.accelerate(object())


def test_packed_weights_are_cached_and_repacked_after_an_update():
    torch.manual_seed(3)
    m = tt.ConvTranspose3d(6, 5, 3, stride=2, padding=1)
    x = torch.randn(2, 6, 4, 4, 4)
    with torch.no_grad():
        m(x)
        packs = tt.cache_stats()["packs"]
        for _ in range(3):
            m(x)
        m(torch.randn(3, 6, 5, 4, 3))  # another shape: reshaped, not repacked
        assert tt.cache_stats()["packs"] == packs
        m.weight.mul_(-2.0)  # in place: the version counter moves
        y = m(x)
        assert tt.cache_stats()["packs"] == packs + 1
        torch.testing.assert_close(y, F.conv_transpose3d(x, m.weight, m.bias, 2, 1), rtol=1e-5, atol=1e-5)
        m.bias.add_(1.0)
        torch.testing.assert_close(m(x), F.conv_transpose3d(x, m.weight, m.bias, 2, 1), rtol=1e-5, atol=1e-5)
    # An optimizer step updates in place too.
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    m(x).square().sum().backward()
    opt.step()
    with torch.no_grad():
        torch.testing.assert_close(m(x), F.conv_transpose3d(x, m.weight, m.bias, 2, 1), rtol=1e-5, atol=1e-5)
    # Fresh weight tensors (often at a dead one's address, with version 0) are never mistaken for it.
    for i in range(5):
        w = torch.full((6, 5, 3, 3, 3), float(i))
        torch.testing.assert_close(tt.conv_transpose3d(x, w), F.conv_transpose3d(x, w), rtol=1e-5, atol=1e-4)
        del w


def test_threads_and_default_dtype_do_not_change_results():
    torch.manual_seed(4)
    x, w = torch.randn(2, 8, 5, 5, 5), torch.randn(8, 9, 3, 3, 3)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = tt.conv_transpose3d(x, w, stride=2)
        torch.set_num_threads(2)
        two = tt.conv_transpose3d(x, w, stride=2)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(one, two, rtol=1e-6, atol=1e-5)
    default = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        y = tt.conv_transpose3d(x, w, stride=2)
    finally:
        torch.set_default_dtype(default)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, one, rtol=1e-6, atol=1e-5)


BAD_CALLS = {
    "4-D weight": lambda: ((torch.randn(1, 4, 3, 3, 3), torch.randn(4, 2, 3, 3)), {}),
    "3-D input": lambda: ((torch.randn(4, 3, 3), torch.randn(4, 2, 3, 3, 3)), {}),
    "channels mismatch": lambda: ((torch.randn(1, 5, 3, 3, 3), torch.randn(4, 2, 3, 3, 3)), {}),
    "bias size": lambda: ((torch.randn(1, 4, 3, 3, 3), torch.randn(4, 2, 3, 3, 3), torch.randn(3)), {}),
    "float64 weight": lambda: ((torch.randn(1, 4, 3, 3, 3), torch.randn(4, 2, 3, 3, 3, dtype=torch.float64)), {}),
    "int input": lambda: ((torch.ones(1, 4, 3, 3, 3, dtype=torch.int32), torch.randn(4, 2, 3, 3, 3)), {}),
    "output_padding too big": lambda: ((torch.randn(1, 4, 3, 3, 3), torch.randn(4, 2, 3, 3, 3)),
                                       dict(stride=2, output_padding=2)),
    "zero stride": lambda: ((torch.randn(1, 4, 3, 3, 3), torch.randn(4, 2, 3, 3, 3)), dict(stride=0)),
    "negative padding": lambda: ((torch.randn(1, 4, 3, 3, 3), torch.randn(4, 2, 3, 3, 3)), dict(padding=-1)),
    "empty output": lambda: ((torch.randn(1, 4, 1, 1, 1), torch.randn(4, 2, 1, 1, 1)), dict(padding=1)),
    "two strides": lambda: ((torch.randn(1, 4, 3, 3, 3), torch.randn(4, 2, 3, 3, 3)), dict(stride=(1, 2))),
    "groups do not divide": lambda: ((torch.randn(1, 4, 3, 3, 3), torch.randn(4, 2, 3, 3, 3)), dict(groups=3)),
    "not a tensor": lambda: ((np.ones((1, 4, 3, 3, 3), np.float32), torch.randn(4, 2, 3, 3, 3)), {}),
}


@pytest.mark.parametrize("name", sorted(BAD_CALLS))
def test_bad_input_raises_like_torch(name):
    args, kwargs = BAD_CALLS[name]()
    with pytest.raises(Exception) as theirs:
        F.conv_transpose3d(*args, **kwargs)
    with pytest.raises(Exception) as ours:
        tt.conv_transpose3d(*args, **kwargs)
    assert type(ours.value) is type(theirs.value)
    assert str(ours.value)
    # Through the registered op (as autograd and torch.compile call it), the same kind of error.
    if isinstance(args[0], torch.Tensor) and args[0].dim() == 5 and "stride" not in kwargs:
        with pytest.raises((RuntimeError, ValueError, TypeError)):
            tt.conv_transpose3d(args[0].requires_grad_(), *args[1:], **kwargs)


@pytest.mark.parametrize("case", ["float64", "groups", "bfloat16", "padding beyond the full output"])
def test_fallbacks_give_torchs_result(case):
    torch.manual_seed(5)
    x, w, kwargs = torch.randn(2, 4, 3, 4, 5), torch.randn(4, 3, 3, 3, 3), dict(stride=2, padding=1)
    if case == "float64":
        x, w = x.double(), w.double()
    elif case == "groups":
        w, kwargs = torch.randn(4, 3, 3, 3, 3), dict(stride=2, groups=2)
    elif case == "bfloat16":
        x, w = x.bfloat16(), w.bfloat16()
    else:
        x, w, kwargs = torch.randn(1, 2, 1, 1, 1), torch.randn(2, 3, 1, 1, 1), dict(stride=3, padding=1,
                                                                                      output_padding=2)
    expected = F.conv_transpose3d(x, w, **kwargs)
    torch.testing.assert_close(tt.conv_transpose3d(x, w, **kwargs), expected, rtol=0, atol=0)
    op_args = [list(kwargs.get(k, v) if isinstance(kwargs.get(k, v), tuple) else [kwargs.get(k, v)] * 3)
               for k, v in (("stride", 1), ("padding", 0), ("output_padding", 0))]
    y = tt.conv_transpose3d_op(x, w, None, *op_args, kwargs.get("groups", 1), [1, 1, 1])
    torch.testing.assert_close(y, expected, rtol=0, atol=0)


def test_inference_mode_weights_are_compared_by_content():
    # Inference tensors have no version counter; an in-place change must still be seen.
    x = torch.randn(2, 3, 4, 4, 4)
    with torch.inference_mode():
        w = torch.randn(3, 4, 2, 2, 2)
        b = torch.randn(4)
        torch.testing.assert_close(tt.conv_transpose3d(x, w, b, stride=2), F.conv_transpose3d(x, w, b, stride=2),
                                   rtol=1e-5, atol=1e-5)
        packs = tt.cache_stats()["packs"]
        tt.conv_transpose3d(x, w, b, stride=2)
        assert tt.cache_stats()["packs"] == packs
        w.mul_(3.0)
        b.sub_(1.0)
        torch.testing.assert_close(tt.conv_transpose3d(x, w, b, stride=2), F.conv_transpose3d(x, w, b, stride=2),
                                   rtol=1e-5, atol=1e-5)
        assert tt.cache_stats()["packs"] == packs + 1


def test_promised_strides_are_torch_empty_strides():
    # The fake implementation promises torch.empty's strides; the real one checks them without allocating.
    from tconv3d.torch._op import _strides

    for shape in [(2, 3, 4, 5, 6), (1, 1, 1, 1, 1), (2, 1, 3, 1, 4), (0, 3, 2, 2, 2), (2, 3, 0, 1, 4)]:
        for fmt in (torch.contiguous_format, CL):
            assert _strides(shape, fmt) == torch.empty(shape, memory_format=fmt).stride(), (shape, fmt)


def test_bench_command_runs():
    import re
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "tconv3d.bench.torch_op", "--layers", "k3s2_op1_odd", "--threads",
                             "1", "--modes", "eager", "--formats", "contiguous,channels_last", "--min-time", "0"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    row = r"k3s2_op1_odd\s+1 eager\s+channels_last\s+[\d.]+\s+[\d.]+\s+[\d.]+x"
    assert re.search(row, result.stdout), result.stdout
    assert "per call, 1-voxel layer" in result.stdout
    bad = subprocess.run([sys.executable, "-m", "tconv3d.bench.torch_op", "--layers", "no_such_layer"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "no_such_layer" in bad.stderr


def test_vmap_over_input_and_weights():
    torch.manual_seed(6)
    x, w, b = torch.randn(3, 2, 4, 3, 3, 3), torch.randn(4, 5, 2, 2, 2), torch.randn(5)
    ours = torch.func.vmap(lambda x: tt.conv_transpose3d(x, w, b, stride=2))(x)
    theirs = torch.func.vmap(lambda x: F.conv_transpose3d(x, w, b, stride=2))(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    ws = torch.randn(3, 4, 5, 2, 2, 2)
    ours = torch.func.vmap(lambda x, w: tt.conv_transpose3d(x, w, padding=1))(x, ws)
    theirs = torch.func.vmap(lambda x, w: F.conv_transpose3d(x, w, padding=1))(x, ws)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    # Unbatched examples: the vmapped axis becomes the batch.
    ours = torch.func.vmap(lambda x: tt.conv_transpose3d(x, w))(x[:, 0])
    torch.testing.assert_close(ours, F.conv_transpose3d(x[:, 0], w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("batch,groups,cin,cout", [(1, 2, 16, 8), (3, 2, 16, 9), (2, 3, 24, 10), (2, 4, 32, 8)])
def test_groups_run_one_layer_per_group(batch, groups, cin, cout):
    rng = np.random.default_rng(10 + batch + groups)
    x = torch.from_numpy(rng.standard_normal((batch, cin, 3, 4, 5)).astype(np.float32))
    w = torch.from_numpy(rng.standard_normal((cin, cout, 3, 2, 3)).astype(np.float32))
    b = torch.from_numpy(rng.standard_normal(cout * groups).astype(np.float32))
    kwargs = dict(stride=(2, 1, 2), padding=(1, 0, 1), output_padding=(1, 0, 0), groups=groups)
    for _ in range(2):  # the second call takes the cached route
        before = tt.cache_stats()["layers"]
        y = tt.conv_transpose3d(x, w, b, **kwargs)
        assert_matches_float64(y, x, w, b, kwargs)
    assert tt.cache_stats()["layers"] == before
    # channels_last_3d and few channels per group: PyTorch's own op.
    y_cl = tt.conv_transpose3d(x.contiguous(memory_format=CL), w, b, **kwargs)
    torch.testing.assert_close(y_cl, F.conv_transpose3d(x.contiguous(memory_format=CL), w, b, **kwargs), rtol=0, atol=0)
    g = tt.conv_transpose3d_op(x.requires_grad_(), w, b, [2, 1, 2], [1, 0, 1], [1, 0, 0], groups, [1, 1, 1])
    torch.testing.assert_close(g, y, rtol=0, atol=0)
    g.sum().backward()
    assert x.grad.shape == x.shape


def test_opcheck_with_groups():
    rng = np.random.default_rng(11)
    x = torch.from_numpy(rng.standard_normal((2, 16, 3, 2, 3)).astype(np.float32)).requires_grad_()
    w = torch.from_numpy(rng.standard_normal((16, 8, 2, 2, 2)).astype(np.float32)).requires_grad_()
    b = torch.zeros(16, requires_grad=True)
    torch.library.opcheck(torch.ops.tconv3d.conv_transpose3d, (x, w, b, [2, 2, 1], [0, 1, 0], [1, 0, 0], 2, [1, 1, 1]))


@pytest.mark.parametrize("seed", range(30))
def test_float32_gradients_come_from_tconv3ds_backward_kernels(seed, monkeypatch):
    import tconv3d.torch._op as op_module

    def torch_backward(*args):
        raise AssertionError("PyTorch's convolution backward ran where tconv3d's kernels should")

    monkeypatch.setattr(op_module, "backward_torch", torch_backward)
    test_gradients_match_torch(1000 + seed)
