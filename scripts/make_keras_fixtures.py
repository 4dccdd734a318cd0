#!/usr/bin/env python3
"""Writes Keras golden fixtures for tconv3d's tests (tests/data/keras/).

Run with the project's Python venv (Keras 3 on the JAX backend, tf_keras for
tf.keras 2.x):

    KERAS_BACKEND=jax /opt/kvenv/bin/python scripts/make_keras_fixtures.py

What it writes, all deterministic (fixed seeds, no clock):
  <case>/config.json      layer.get_config(), exactly as Keras returns it
  <case>/layer.json       the layer serialized as in a model file ({"class_name", "config", ...})
  <case>/input.npy, kernel.npy, bias.npy (when use_bias), output.npy (Keras's output)
  index.json              every case: flavor, constructor kwargs, shapes, loss terms
  errors.json             what each flavor does with bad arguments (raises or not, and the message)
  objects.json            how each flavor resolves serialized/bare-name initializers, regularizers,
                          constraints and activations (accepted or not, and the resulting config)
  constraints.json + constraints/*.npy   constraint outputs on fixed tensors
  initializers.json       fans and sample statistics of Keras's own initializer draws

Notes on what real Keras does (checked by this script, recorded in the JSON):
  * tf_keras ignores dilation_rate in Conv3DTranspose (its get_config() also drops it). Its fixture
    output is what tf_keras really computes; the ctor kwargs in index.json keep the dilation.
  * TensorFlow's CPU Conv3DBackpropInput has historically had no NCDHW kernel. For tf_keras
    channels_first cases we compute with a channels_last twin layer that has linear activation and
    the same weights, on the transposed input, transpose the result back to NCDHW, and then apply
    the channels_first layer's own activation to that NCDHW tensor, which is what tf_keras's call()
    does after bias_add (so the axis activations still act on the last axis, W). Where this TF
    does run NCDHW on the CPU (TF 2.21 with oneDNN does; index.json's versions record the probe),
    the real layer's output is written and the script asserts that the twin agrees with it.
  * tf_keras's error for padding="same" + output_padding=0 + an even kernel: TF 2.21's oneDNN
    kernel raises AbortedError ("could not create a primitive descriptor") instead of the
    InvalidArgumentError "Size of out_backprop doesn't match computed" of TF's own kernel;
    either way the layer call fails (errors.json).
"""
import json
import os
import shutil
import sys
import zlib

if os.environ.get("PYTHONHASHSEED") != "0":
    # Keras prints some choices as Python sets, whose order follows the string hash seed:
    # fix it so errors.json comes out the same on every run.
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "keras")
FLAVORS = ("keras3", "tf_keras2")


def module_of(flavor):
    return keras if flavor == "keras3" else tf_keras


def seed_of(*parts):
    return zlib.crc32("/".join(str(p) for p in parts).encode())


def to_json(value):
    """Tuples become lists, numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(to_json(value), f, indent=1, sort_keys=True)
        f.write("\n")


def save(path, array):
    np.save(path, np.ascontiguousarray(np.asarray(array, dtype=np.float32)))


def serialize_layer(flavor, layer):
    if flavor == "keras3":
        return keras.saving.serialize_keras_object(layer)
    return tf_keras.layers.serialize(layer)


# ---------------------------------------------------------------------------
# Golden forward cases.
# Each: name, kwargs, input shape (in the layer's data format), flavors,
# value ranges. Spatial sizes are tiny; channel counts odd (3, 5, 17).

def case(name, kwargs, input_shape, flavors=FLAVORS, x_range=1.0, w_range=0.5, b_range=0.5, note=""):
    return dict(name=name, kwargs=kwargs, input_shape=list(input_shape), flavors=flavors,
                x_range=x_range, w_range=w_range, b_range=b_range, note=note)


CL, CF = "channels_last", "channels_first"
CASES = [
    case("valid_s1_k3", dict(filters=5, kernel_size=3, activation="relu"), (2, 4, 5, 3, 3)),
    case("same_s1_k3", dict(filters=4, kernel_size=3, padding="same", activation="tanh"), (1, 3, 4, 5, 5)),
    case("same_s1_k2_even", dict(filters=3, kernel_size=2, padding="SAME"), (2, 3, 2, 4, 3)),
    case("valid_s2_k2", dict(filters=17, kernel_size=2, strides=2, activation="sigmoid"), (2, 3, 2, 3, 3)),
    case("same_s2_k4_even", dict(filters=3, kernel_size=4, strides=2, padding="same"), (1, 3, 4, 5, 5)),
    case("same_s2_k3", dict(filters=5, kernel_size=3, strides=2, padding="same", activation="elu"), (2, 3, 3, 4, 3)),
    case("valid_s3_k1_gaps", dict(filters=5, kernel_size=1, strides=3, activation="relu"), (1, 2, 3, 2, 3),
         note="stride > kernel: outputs between taps hold bias only"),
    case("same_s3_k2", dict(filters=5, kernel_size=2, strides=3, padding="same"), (2, 2, 3, 3, 5)),
    case("valid_s3_k2", dict(filters=3, kernel_size=(2, 1, 2), strides=3), (1, 3, 2, 3, 5)),
    case("mixed_same", dict(filters=5, kernel_size=(2, 3, 4), strides=(1, 2, 3), padding="same",
                            activation="gelu"), (2, 3, 3, 2, 3)),
    case("mixed_valid", dict(filters=5, kernel_size=(3, 2, 1), strides=(3, 1, 2), activation="softplus"),
         (1, 2, 4, 3, 5)),
    case("valid_op1", dict(filters=3, kernel_size=3, strides=2, output_padding=1, activation="silu"),
         (2, 3, 2, 3, 5)),
    case("same_op_mixed", dict(filters=5, kernel_size=3, strides=2, padding="same", output_padding=(0, 1, 0)),
         (1, 3, 4, 3, 3)),
    case("same_op_even", dict(filters=5, kernel_size=(2, 4, 2), strides=(2, 3, 2), padding="same",
                              output_padding=(1, 2, 1), activation="relu6"), (2, 2, 3, 3, 3), w_range=2.0),
    case("valid_op_s3", dict(filters=3, kernel_size=(1, 2, 3), strides=3, output_padding=(2, 1, 0)),
         (1, 2, 3, 2, 5)),
    case("same_op0_odd", dict(filters=5, kernel_size=3, strides=2, padding="same", output_padding=0),
         (1, 3, 3, 4, 3)),
    # Keras 3 (JAX) computes this; tf.keras 2.x raises TF's size-check error (recorded in errors.json).
    case("same_op0_even_k3only", dict(filters=3, kernel_size=2, strides=2, padding="same", output_padding=0),
         (2, 3, 4, 3, 3), flavors=("keras3",)),
    case("dilation_valid", dict(filters=3, kernel_size=3, dilation_rate=2, activation="relu"), (1, 4, 3, 5, 3),
         note="tf_keras ignores dilation_rate"),
    case("dilation_same_mixed", dict(filters=5, kernel_size=(2, 3, 2), dilation_rate=(1, 2, 3), padding="same"),
         (2, 4, 3, 5, 3), note="tf_keras ignores dilation_rate"),
    case("dilation_same_op", dict(filters=3, kernel_size=3, dilation_rate=(2, 1, 2), padding="same",
                                  output_padding=0), (1, 3, 4, 4, 5), note="tf_keras ignores dilation_rate"),
    case("cf_same_s2", dict(filters=5, kernel_size=3, strides=2, padding="same", data_format=CF,
                            activation="relu"), (2, 3, 3, 4, 3)),
    case("cf_valid_op", dict(filters=17, kernel_size=(2, 3, 2), strides=(2, 2, 1), output_padding=(1, 0, 0),
                             data_format=CF, activation="relu6"), (1, 3, 2, 3, 2), w_range=2.0),
    case("cf_dilation", dict(filters=3, kernel_size=2, dilation_rate=(2, 2, 1), data_format=CF), (1, 5, 3, 3, 4),
         note="tf_keras ignores dilation_rate"),
    case("no_bias_leaky", dict(filters=5, kernel_size=3, strides=2, use_bias=False, activation="leaky_relu"),
         (2, 2, 3, 2, 3)),
    case("cf_no_bias", dict(filters=3, kernel_size=2, strides=(1, 2, 3), padding="same", use_bias=False,
                            data_format=CF), (1, 5, 2, 3, 2)),
    case("hard_sigmoid", dict(filters=5, kernel_size=3, strides=2, activation="hard_sigmoid"), (1, 2, 3, 2, 3),
         w_range=3.0, b_range=2.0, note="hard_sigmoid differs: relu6(x+3)/6 vs clip(0.2x+0.5)"),
    case("regularized", dict(filters=5, kernel_size=3, strides=2, padding="same", activation="tanh",
                             kernel_regularizer=dict(class_name="L1", config=dict(l1=0.003)),
                             bias_regularizer="l2",
                             activity_regularizer=dict(class_name="L1L2", config=dict(l1=0.001, l2=0.02))), (2, 3, 2, 3, 3)),
    case("regularized_strings", dict(filters=3, kernel_size=2, kernel_regularizer="l1", bias_regularizer="l1",
                                     activity_regularizer="l2"), (3, 2, 3, 2, 5)),
]

# Axis activations act on the LAST axis (W under channels_first), in both formats.
AXIS_ACTIVATIONS = {"keras3": ["softmax", "log_softmax", "glu", "sparsemax"],
                    "tf_keras2": ["softmax", "log_softmax"]}
for act in AXIS_ACTIVATIONS["keras3"]:
    flavors = tuple(f for f in FLAVORS if act in AXIS_ACTIVATIONS[f])
    # glu halves the last axis: under channels_first that is W, which must come out even (here 6).
    CASES.append(case(f"axis_{act}_cl", dict(filters=6, kernel_size=3, strides=2, padding="same", activation=act),
                      (2, 2, 3, 2, 3), flavors=flavors, w_range=1.5))
    CASES.append(case(f"axis_{act}_cf", dict(filters=5, kernel_size=3, strides=2, padding="same", activation=act,
                                             data_format=CF), (2, 3, 2, 2, 3), flavors=flavors, w_range=1.5))

# Every elementwise activation each flavor accepts by name, on a tiny layer.
ELEMENTWISE = {
    "keras3": ["linear", "relu", "leaky_relu", "relu6", "elu", "celu", "selu", "softplus", "softsign",
               "squareplus", "soft_shrink", "hard_shrink", "sparse_plus", "silu", "swish", "hard_silu",
               "hard_swish", "gelu", "tanh", "tanh_shrink", "hard_tanh", "sigmoid", "hard_sigmoid",
               "sparse_sigmoid", "log_sigmoid", "exponential", "mish"],
    "tf_keras2": ["linear", "relu", "leaky_relu", "relu6", "elu", "selu", "softplus", "softsign", "silu", "swish",
                  "gelu", "tanh", "sigmoid", "hard_sigmoid", "exponential", "mish", "ReLU", "LeakyReLU", "ELU",
                  "Softmax"],
}
for flavor, names in ELEMENTWISE.items():
    for act in names:
        CASES.append(case(f"act_{act}", dict(filters=4, kernel_size=2, strides=2, activation=act),
                          (1, 2, 2, 2, 3), flavors=(flavor,), w_range=1.5, b_range=1.0))


def make_layer(flavor, kwargs):
    mod = module_of(flavor)
    kwargs = dict(kwargs)
    for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer"):
        if isinstance(kwargs.get(key), dict):  # {"class_name", "config"}: let the flavor deserialize it
            kwargs[key] = mod.regularizers.get(kwargs[key])
    return mod.layers.Conv3DTranspose(**kwargs)


def run_keras3(layer, x, kernel, bias):
    layer.build(x.shape)
    layer.set_weights([kernel, bias] if bias is not None else [kernel])
    y = np.asarray(layer(x))
    losses = [float(v) for v in layer.losses]
    return y, losses


def run_tf_keras_twin(kwargs, x, weights, activation):
    """channels_first through a channels_last twin: NDHWC conv + bias, back to NCDHW, then activate."""
    twin_kwargs = dict(kwargs, data_format=CL, activation="linear", activity_regularizer=None)
    twin = make_layer("tf_keras2", twin_kwargs)
    x_last = np.transpose(x, (0, 2, 3, 4, 1))
    twin.build(x_last.shape)
    twin.set_weights(weights)
    y_pre = tf.transpose(twin(x_last), (0, 4, 1, 2, 3))
    return np.asarray(activation(y_pre))


def run_tf_keras(layer, kwargs, x, kernel, bias):
    weights = [kernel, bias] if bias is not None else [kernel]
    layer.build(x.shape)
    layer.set_weights(weights)
    if kwargs.get("data_format") == CF:
        twin_y = run_tf_keras_twin(kwargs, x, weights, layer.activation)
        if TF_NCDHW.startswith("supported"):
            # This TF runs NCDHW on the CPU after all: use the real layer, and check the twin agrees.
            y = np.asarray(layer(x))
            scale = max(1.0, float(np.abs(y).max()))
            assert float(np.abs(y - twin_y).max()) <= 1e-5 * scale, "NCDHW op and NDHWC twin disagree"
            return y, [float(v) for v in layer.losses], "ncdhw_op (twin agrees)"
        losses = [float(v) for v in layer.losses]
        if layer.activity_regularizer is not None:
            losses.append(float(layer.activity_regularizer(tf.constant(twin_y))) / x.shape[0])
        return twin_y, losses, "ndhwc_twin"
    y = np.asarray(layer(x))
    return y, [float(v) for v in layer.losses], "op"


def simplex_sparsemax(z):
    """Martins & Astudillo's sparsemax over the last axis: tau = (cumsum[k] - 1) / k."""
    z = np.asarray(z, np.float64)
    z_sorted = -np.sort(-z, axis=-1)
    cumsum = np.cumsum(z_sorted, axis=-1)
    r = np.arange(1, z.shape[-1] + 1)
    support = z_sorted - (cumsum - 1) / r > 0
    k = support.sum(axis=-1, keepdims=True)
    tau = (np.take_along_axis(cumsum, k - 1, axis=-1) - 1) / k
    return np.maximum(z - tau, 0.0).astype(np.float32)


SPARSEMAX_BUG = ("Keras 3 <= 3.15 computes sparsemax's threshold from the sum of ALL cumulative sums in the "
                 "support instead of the k-th one (keras-team/keras#23425, fixed by #23469), on every backend, so "
                 "its rows do not sum to 1. output.npy is what this Keras returned; output_simplex.npy applies "
                 "the correct sparsemax to this Keras's own pre-activation output, and is what tconv3d matches.")


def weight_term(regularizer, weight):
    return 0.0 if regularizer is None or weight is None else float(regularizer(weight))


def write_case(spec, flavor):
    name = f"{flavor}_{spec['name']}"
    rng = np.random.default_rng(seed_of(name))
    layer = make_layer(flavor, spec["kwargs"])
    x = rng.uniform(-spec["x_range"], spec["x_range"], size=spec["input_shape"]).astype(np.float32)
    channels_first = spec["kwargs"].get("data_format") == CF
    in_channels = x.shape[1] if channels_first else x.shape[-1]
    ks = layer.kernel_size
    kernel = rng.uniform(-spec["w_range"], spec["w_range"],
                         size=(*ks, spec["kwargs"]["filters"], in_channels)).astype(np.float32)
    use_bias = spec["kwargs"].get("use_bias", True)
    bias = (rng.uniform(-spec["b_range"], spec["b_range"], size=(spec["kwargs"]["filters"],)).astype(np.float32)
            if use_bias else None)
    if flavor == "keras3":
        y, losses = run_keras3(layer, x, kernel, bias)
        path = "op"
    else:
        y, losses, path = run_tf_keras(layer, spec["kwargs"], x, kernel, bias)
    d = os.path.join(OUT, name)
    os.makedirs(d)
    write_json(os.path.join(d, "config.json"), layer.get_config())
    write_json(os.path.join(d, "layer.json"), serialize_layer(flavor, layer))
    save(os.path.join(d, "input.npy"), x)
    save(os.path.join(d, "kernel.npy"), kernel)
    if use_bias:
        save(os.path.join(d, "bias.npy"), bias)
    save(os.path.join(d, "output.npy"), y)
    extra = {}
    if spec["kwargs"].get("activation") == "sparsemax":
        linear = make_layer(flavor, dict(spec["kwargs"], activation="linear"))
        y_linear, _ = run_keras3(linear, x, kernel, bias)
        simplex = simplex_sparsemax(y_linear)
        buggy = np.asarray(keras.activations.sparsemax(y_linear))
        assert np.abs(buggy - y).max() <= 1e-6, "sparsemax reproduction of this Keras failed"
        if np.abs(simplex - y).max() > 1e-5 * max(1.0, float(np.abs(y).max())):
            save(os.path.join(d, "output_simplex.npy"), simplex)
            extra = dict(expected_output="output_simplex.npy", keras_bug=SPARSEMAX_BUG)
    entry = dict(name=name, flavor=flavor, kwargs=spec["kwargs"], input_shape=list(x.shape),
                 output_shape=list(y.shape), use_bias=use_bias, note=spec["note"], computed_by=path,
                 **extra)
    if any(spec["kwargs"].get(k) is not None for k in ("kernel_regularizer", "bias_regularizer",
                                                      "activity_regularizer")):
        k_term = weight_term(layer.kernel_regularizer, layer.kernel)
        b_term = weight_term(layer.bias_regularizer, layer.bias if use_bias else None)
        raw_activity = weight_term(layer.activity_regularizer, tf.constant(y))
        total = float(sum(losses))
        entry["losses"] = dict(kernel=k_term, bias=b_term, activity=total - k_term - b_term,
                               activity_undivided=raw_activity, batch=int(x.shape[0]), keras_losses=losses)
    return entry


# ---------------------------------------------------------------------------
# Errors: what each flavor does with bad arguments. `argument` is the one at
# fault (what tconv3d's Error::argument() must name); `input_shape` makes the
# case build and call the layer (errors that appear only then).

ERRORS = [
    dict(name="filters_zero", kwargs=dict(filters=0, kernel_size=1), argument="filters"),
    dict(name="filters_negative", kwargs=dict(filters=-2, kernel_size=1), argument="filters"),
    dict(name="kernel_size_zero", kwargs=dict(filters=2, kernel_size=0), argument="kernel_size"),
    dict(name="kernel_size_one_zero", kwargs=dict(filters=2, kernel_size=(1, 0, 1)), argument="kernel_size"),
    dict(name="kernel_size_negative", kwargs=dict(filters=2, kernel_size=(2, -1, 2)), argument="kernel_size"),
    dict(name="kernel_size_two_values", kwargs=dict(filters=2, kernel_size=(2, 2)), argument="kernel_size"),
    dict(name="strides_zero", kwargs=dict(filters=2, kernel_size=2, strides=(1, 0, 1)), argument="strides"),
    dict(name="strides_negative", kwargs=dict(filters=2, kernel_size=2, strides=-1), argument="strides"),
    dict(name="strides_negative_one_axis", kwargs=dict(filters=2, kernel_size=2, strides=(2, -2, 1)),
         argument="strides"),
    dict(name="dilation_zero", kwargs=dict(filters=2, kernel_size=2, dilation_rate=0), argument="dilation_rate"),
    dict(name="dilation_negative", kwargs=dict(filters=2, kernel_size=2, dilation_rate=(1, -1, 1)),
         argument="dilation_rate"),
    dict(name="output_padding_eq_stride", kwargs=dict(filters=2, kernel_size=3, strides=2, output_padding=2),
         argument="output_padding"),
    dict(name="output_padding_stride1", kwargs=dict(filters=8, kernel_size=3, strides=1, output_padding=1),
         argument="output_padding"),
    dict(name="output_padding_gt_stride_one_axis",
         kwargs=dict(filters=2, kernel_size=3, strides=(2, 2, 3), output_padding=(1, 3, 1)),
         argument="output_padding"),
    dict(name="output_padding_negative", kwargs=dict(filters=2, kernel_size=3, strides=2, output_padding=-1),
         argument="output_padding"),
    dict(name="stride_and_dilation", kwargs=dict(filters=2, kernel_size=2, strides=2, dilation_rate=(2, 1, 1)),
         argument="dilation_rate"),
    dict(name="stride_and_dilation_mixed", kwargs=dict(filters=1, kernel_size=2, strides=(2, 2, 1),
                                                       dilation_rate=(2, 2, 1)), argument="dilation_rate"),
    dict(name="padding_bad", kwargs=dict(filters=2, kernel_size=2, padding="full"), argument="padding"),
    dict(name="padding_causal", kwargs=dict(filters=2, kernel_size=2, padding="causal"), argument="padding"),
    dict(name="data_format_bad", kwargs=dict(filters=2, kernel_size=2, data_format="channels_middle"),
         argument="data_format"),
    dict(name="activation_threshold", kwargs=dict(filters=2, kernel_size=2, activation="threshold"),
         input_shape=[1, 2, 2, 2, 3], argument="activation",
         note="Keras 3 accepts the name and fails only when the layer is called (threshold needs arguments)"),
    dict(name="activation_unknown", kwargs=dict(filters=2, kernel_size=2, activation="relu7"),
         argument="activation"),
    dict(name="same_op0_even_kernel", kwargs=dict(filters=2, kernel_size=2, strides=2, padding="same",
                                                  output_padding=0),
         input_shape=[2, 4, 4, 4, 3], argument="output_padding"),
    dict(name="same_op0_even_kernel_s1", kwargs=dict(filters=2, kernel_size=(3, 4, 3), padding="same",
                                                     output_padding=0),
         input_shape=[1, 3, 3, 3, 2], argument="output_padding"),
    dict(name="same_op0_even_dilated_keff", kwargs=dict(filters=2, kernel_size=3, padding="same", output_padding=0,
                                                        dilation_rate=(1, 1, 2)),
         input_shape=[1, 3, 3, 3, 2], argument="output_padding",
         note="Keff = 5 (odd) with dilation; tf_keras ignores dilation so k=3 is odd too: no error in either"),
    # Not errors in Keras: recorded so the tests check we accept them too.
    dict(name="padding_upper_ok", kwargs=dict(filters=2, kernel_size=2, padding="Same"), argument="padding"),
    dict(name="data_format_upper_ok", kwargs=dict(filters=2, kernel_size=2, data_format="Channels_Last"),
         argument="data_format"),
    dict(name="output_padding_zero_ok", kwargs=dict(filters=2, kernel_size=3, strides=2, output_padding=0),
         argument="output_padding"),
]


def record_error(flavor, spec):
    try:
        layer = make_layer(flavor, spec["kwargs"])
        if "input_shape" in spec:
            x = np.zeros(spec["input_shape"], np.float32)
            y = layer(x)
            return dict(raised=False, output_shape=list(np.asarray(y).shape))
        return dict(raised=False)
    except Exception as e:  # noqa: BLE001 - we record whatever Keras raises
        return dict(raised=True, type=type(e).__name__, message=" ".join(str(e).split())[:700])


# ---------------------------------------------------------------------------
# Serialized objects: how each flavor resolves bare names and config dicts.

OBJECT_NAMES = {
    "initializers": ["glorot_uniform", "GlorotUniform", "glorotuniform", "glorot_normal", "he_normal",
                     "he_uniform", "lecun_normal", "lecun_uniform", "zeros", "Zeros", "zero", "ones", "one",
                     "constant", "Constant", "random_normal", "normal", "RandomNormal", "random_uniform",
                     "uniform", "RandomUniform", "truncated_normal", "TruncatedNormal", "variance_scaling",
                     "VarianceScaling", "orthogonal", "Orthogonal", "OrthogonalInitializer", "identity",
                     "IdentityInitializer", "Identity", "glorotUniform", "he_normal_bad"],
    "regularizers": ["l1", "l2", "l1_l2", "l1l2", "L1", "L2", "L1L2", "L1_L2", "l3", "orthogonal_regularizer"],
    "constraints": ["max_norm", "MaxNorm", "maxnorm", "min_max_norm", "MinMaxNorm", "non_neg", "NonNeg",
                    "nonneg", "unit_norm", "UnitNorm", "unitnorm", "radial_constraint"],
}


def resolve_object(flavor, kind, identifier):
    mod = getattr(module_of(flavor), kind)
    try:
        obj = mod.get(identifier)
        if isinstance(obj, str) or not hasattr(obj, "get_config"):
            return dict(accepted=False, type="NotAnObject", message=f"get() returned {obj!r}")
        return dict(accepted=True, class_name=type(obj).__name__, config=obj.get_config(),
                    serialized=serialize_object(flavor, obj))
    except Exception as e:  # noqa: BLE001
        return dict(accepted=False, type=type(e).__name__, message=str(e).strip().splitlines()[0][:300])


def serialize_object(flavor, obj):
    if flavor == "keras3":
        return keras.saving.serialize_keras_object(obj)
    return tf_keras.saving.serialize_keras_object(obj)


def record_objects():
    out = {}
    for flavor in FLAVORS:
        out[flavor] = {kind: {n: resolve_object(flavor, kind, n) for n in names}
                       for kind, names in OBJECT_NAMES.items()}
        acts = {}
        for n in sorted(set(sum(ELEMENTWISE.values(), [])) | set(AXIS_ACTIVATIONS["keras3"]) |
                        {"threshold", "relu7", "Relu", "RELU", "hard_silu", "swish", "hard_swish"}):
            try:
                module_of(flavor).activations.get(n)
                acts[n] = dict(accepted=True)
            except Exception as e:  # noqa: BLE001
                acts[n] = dict(accepted=False, type=type(e).__name__, message=str(e).strip()[:200])
        out[flavor]["activations"] = acts
    return out


# ---------------------------------------------------------------------------
# Constraints on fixed tensors: a kernel-shaped 5-D tensor and a bias.

CONSTRAINTS = [
    ("max_norm_default", "MaxNorm", {}),
    ("max_norm_axes", "MaxNorm", dict(max_value=1.0, axis=[0, 1, 2, 3])),
    ("max_norm_last", "MaxNorm", dict(max_value=1.5, axis=-1)),
    ("min_max_norm_default", "MinMaxNorm", {}),
    ("min_max_norm_explicit", "MinMaxNorm", dict(min_value=0.8, max_value=1.5, rate=0.7, axis=[0, 1, 2])),
    ("non_neg", "NonNeg", {}),
    ("unit_norm_default", "UnitNorm", {}),
    ("unit_norm_axes", "UnitNorm", dict(axis=[0, 1, 2, 4])),
    ("unit_norm_last", "UnitNorm", dict(axis=-1)),
]


def record_constraints():
    d = os.path.join(OUT, "constraints")
    os.makedirs(d)
    rng = np.random.default_rng(seed_of("constraints"))
    kernel = rng.normal(0.0, 0.6, size=(3, 2, 2, 4, 5)).astype(np.float32)
    bias = rng.normal(0.0, 1.5, size=(7,)).astype(np.float32)
    save(os.path.join(d, "kernel.npy"), kernel)
    save(os.path.join(d, "bias.npy"), bias)
    entries = []
    for flavor in FLAVORS:
        mod = module_of(flavor)
        for name, cls, kwargs in CONSTRAINTS:
            obj = getattr(mod.constraints, cls)(**kwargs)
            for tensor_name, tensor in (("kernel", kernel), ("bias", bias)):
                if tensor_name == "bias" and isinstance(obj.get_config().get("axis"), list):
                    continue  # multi-axis norms make no sense on a 1-D bias
                if flavor == "keras3":
                    result = np.asarray(obj(keras.ops.convert_to_tensor(tensor)))
                else:
                    result = obj(tf.constant(tensor)).numpy()
                file = f"{flavor}_{name}_{tensor_name}.npy"
                save(os.path.join(d, file), result)
                entries.append(dict(flavor=flavor, name=name, tensor=tensor_name, output=file,
                                    serialized=serialize_object(flavor, obj)))
    return entries


# ---------------------------------------------------------------------------
# Initializers: Keras's fans for the 5-D transposed kernel and its sample
# statistics (the RNG streams differ from ours, so only statistics compare).

INIT_SHAPE = (3, 3, 3, 16, 8)  # (kd, kh, kw, filters, in_channels): fan_in 432, fan_out 216


def record_initializers():
    from keras.src.initializers.random_initializers import compute_fans as k3_fans
    from tf_keras.src.initializers.initializers import _compute_fans as tk_fans
    names = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
             "random_normal", "random_uniform", "truncated_normal", "orthogonal", "zeros", "ones"]
    out = dict(shape=list(INIT_SHAPE), fans={"keras3": list(k3_fans(INIT_SHAPE)),
                                             "tf_keras2": list(tk_fans(INIT_SHAPE))}, stats={})
    for flavor in FLAVORS:
        mod = module_of(flavor)
        out["stats"][flavor] = {}
        for n in names:
            init = mod.initializers.get(n)
            if hasattr(init, "seed"):
                init = type(init).from_config(dict(init.get_config(), seed=1234))
            w = np.asarray(init(INIT_SHAPE, dtype="float32"), dtype=np.float64)
            out["stats"][flavor][n] = dict(class_name=type(init).__name__, config=init.get_config(),
                                           mean=float(w.mean()), std=float(w.std()),
                                           min=float(w.min()), max=float(w.max()))
    return out


def probe_tf_ncdhw():
    """Whether TF's CPU kernel runs conv3d_transpose in NCDHW here (it has had none so far)."""
    try:
        x = tf.zeros((1, 2, 3, 3, 3))
        w = tf.zeros((2, 2, 2, 4, 2))
        tf.nn.conv3d_transpose(x, w, (1, 4, 4, 4, 4), (1, 1, 1, 1, 1), padding="VALID", data_format="NCDHW")
        return "supported"
    except Exception as e:  # noqa: BLE001
        return f"unsupported: {type(e).__name__}: {' '.join(str(e).split())[:200]}"


TF_NCDHW = probe_tf_ncdhw()


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    print(f"keras {keras.__version__} ({keras.backend.backend()}), tf_keras {tf_keras.__version__}, "
          f"tensorflow {tf.__version__}, numpy {np.__version__}", file=sys.stderr)
    entries = []
    for spec in CASES:
        for flavor in spec["flavors"]:
            entries.append(write_case(spec, flavor))
    versions = dict(keras=keras.__version__, keras_backend=keras.backend.backend(),
                    tf_keras=tf_keras.__version__, tensorflow=tf.__version__,
                    tf_cpu_ncdhw_conv3d_transpose=TF_NCDHW)
    write_json(os.path.join(OUT, "index.json"), dict(versions=versions, cases=entries))
    errors = [dict(spec, results={f: record_error(f, spec) for f in FLAVORS}) for spec in ERRORS]
    write_json(os.path.join(OUT, "errors.json"), dict(versions=versions, cases=errors))
    write_json(os.path.join(OUT, "objects.json"), dict(versions=versions, **record_objects()))
    write_json(os.path.join(OUT, "constraints.json"), dict(versions=versions, cases=record_constraints()))
    write_json(os.path.join(OUT, "initializers.json"), dict(versions=versions, **record_initializers()))
    print(f"wrote {len(entries)} golden cases to {os.path.normpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
