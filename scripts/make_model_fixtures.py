#!/usr/bin/env python3
"""Builds the model-loading fixtures in tests/data/models with the real tools.

Keras 3 (JAX backend) and tf_keras 2.x build small models holding 3D transposed
convolutions and save them in every format tconv3d loads; onnx.helper builds
ONNX graphs that onnxruntime runs. For every transposed convolution the
layer's input and output, as the real framework computes them, go into
<model>.io.npz (keys "<layer path>:in" / "<layer path>:out"); manifest.json
lists files, layers and expectations for tests/model_test.cc.

Usage: /opt/kvenv/bin/python scripts/make_model_fixtures.py [--out DIR] [--only keras3|tf_keras|onnx]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "data", "models")


def randomize_biases(layers, rng):
    # Keras initializes biases to zero, which would hide a bias mistake.
    for layer in layers:
        weights = layer.get_weights()
        if len(weights) == 2:
            weights[1] = rng.uniform(-0.5, 0.5, weights[1].shape).astype("float32")
            layer.set_weights(weights)


def transposed_layers(keras, model, prefix=""):
    """(path, layer) for every Conv3DTranspose, walking nested models."""
    found = []
    for layer in model.layers:
        path = prefix + layer.name
        if isinstance(layer, keras.Model):
            found += transposed_layers(keras, layer, path + "/")
        elif type(layer).__name__ == "Conv3DTranspose":
            found.append((path, layer))
    return found


def record_io(keras, np, model, sample, rng):
    """Layer input/output pairs: intermediate outputs for the model's own
    layers, a direct call for layers inside nested models."""
    records = {}
    top = {layer.name for layer in model.layers}
    for path, layer in transposed_layers(keras, model):
        if path in top:
            probe = keras.Model(model.inputs, [layer.input, layer.output])
            x, y = probe.predict(sample, verbose=0)
        else:
            shape = (2,) + tuple(layer.input.shape[1:])
            x = rng.uniform(-1, 1, shape).astype("float32")
            y = np.asarray(layer(x))
        records[path + ":in"] = np.asarray(x, dtype="float32")
        records[path + ":out"] = np.asarray(y, dtype="float32")
    return records


def unet_decoder(keras):
    L = keras.layers
    inp = keras.Input((4, 4, 4, 2), name="volume")
    e1 = L.Conv3D(4, 3, padding="same", activation="relu", name="enc1")(inp)
    e2 = L.Conv3D(6, 3, strides=2, padding="same", activation="relu", name="enc2")(e1)
    u1 = L.Conv3DTranspose(4, 2, strides=2, name="up1")(e2)
    c1 = L.Concatenate(name="skip1")([u1, e1])
    u2 = L.Conv3DTranspose(3, 3, strides=1, padding="same", activation="relu", name="up2")(c1)
    out = L.Conv3DTranspose(2, 3, strides=2, padding="same", output_padding=1, activation="sigmoid",
                            name="head")(u2)
    return keras.Model(inp, out, name="unet_decoder"), (2, 4, 4, 4, 2)


def gan_generator(keras):
    L = keras.layers
    return keras.Sequential([
        keras.Input((8,)),
        L.Dense(2 * 2 * 2 * 6, name="project"),
        L.Reshape((2, 2, 2, 6), name="to_volume"),
        L.Conv3DTranspose(5, 4, strides=2, padding="same", activation="relu", name="g1"),
        L.Convolution3DTranspose(3, 4, strides=2, padding="same", use_bias=False, name="g2"),
        L.Conv3DTranspose(1, 3, strides=1, padding="valid", activation="tanh", name="g_out"),
    ], name="gan_generator"), (2, 8)


def video_model(keras, dilation):
    L = keras.layers
    inp = keras.Input((3, 4, 5, 3), name="clip")
    x = L.Conv3DTranspose(4, (3, 4, 4), strides=(1, 2, 2), padding="same", name="st_up")(inp)
    x = L.Conv3DTranspose(3, (2, 3, 3), strides=(2, 1, 3), padding="valid", output_padding=(1, 0, 2),
                          activation="elu", name="t_up")(x)
    if dilation:
        x = L.Conv3DTranspose(2, (2, 2, 2), dilation_rate=(2, 1, 1), padding="same", name="dilated")(x)
    return keras.Model(inp, x, name="video"), (2, 3, 4, 5, 3)


def channels_first_model(keras):
    L = keras.layers
    inp = keras.Input((3, 2, 3, 4), name="ncdhw")
    x = L.Conv3DTranspose(4, 3, strides=2, padding="same", data_format="channels_first", name="cf_up1")(inp)
    x = L.Conv3DTranspose(2, (2, 3, 2), strides=(1, 2, 1), data_format="channels_first",
                          activation="relu", name="cf_up2")(x)
    return keras.Model(inp, x, name="channels_first"), (2, 3, 2, 3, 4)


def nested_model(keras):
    L = keras.layers
    inner_in = keras.Input((2, 3, 3, 4))
    x = L.Conv3DTranspose(3, 3, strides=2, padding="same", name="up1")(inner_in)
    x = L.Conv3DTranspose(2, 2, strides=1, use_bias=False, name="up2")(x)
    decoder = keras.Model(inner_in, x, name="decoder")
    refine = keras.Sequential([keras.Input((5, 7, 7, 2)),
                               L.Conv3DTranspose(2, 2, name="up1")], name="refine")
    inp = keras.Input((2, 3, 3, 5))
    y = L.Conv3D(4, 1, name="proj")(inp)
    y = decoder(y)
    y = refine(y)
    # A top-level layer with the same leaf name as layers inside the nested models.
    y = L.Conv3DTranspose(1, 1, name="up1")(L.Activation("relu", name="act")(y))
    return keras.Model(inp, y, name="nested"), (2, 2, 3, 3, 5)


def save_keras_family(keras, np, rng, out, tag, builders, formats):
    manifest = []
    for name, (model, sample_shape) in builders:
        randomize_biases([l for _, l in transposed_layers(keras, model)], rng)
        sample = rng.uniform(-1, 1, sample_shape).astype("float32")
        records = record_io(keras, np, model, sample, rng)
        stem = f"{tag}_{name}"
        np.savez_compressed(os.path.join(out, stem + ".io.npz"), **records)
        files = []
        for fmt in formats:
            path = stem + fmt
            if fmt in (".weights.h5", "_legacy_weights.h5"):  # the second: tf.keras's legacy HDF5 weights layout
                model.save_weights(os.path.join(out, path))
                with open(os.path.join(out, stem + ".config.json"), "w") as f:
                    f.write(model.to_json())
                files.append({"file": path, "config": stem + ".config.json"})
            else:
                model.save(os.path.join(out, path))
                files.append({"file": path})
        layers = sorted({k.rsplit(":", 1)[0] for k in records})
        manifest.append({"model": stem, "io": stem + ".io.npz", "files": files, "layers": layers,
                         "flavor": "tf_keras2" if tag == "tfk" else "keras3"})
    return manifest


def build_keras3(out):
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    import numpy as np
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    builders = [("unet_decoder", unet_decoder(keras)), ("video", video_model(keras, True)),
                ("channels_first", channels_first_model(keras)), ("nested", nested_model(keras))]
    return save_keras_family(keras, np, rng, out, "k3", builders, [".keras", ".h5", ".weights.h5"])


def build_tf_keras(out):
    import tf_keras as keras
    import numpy as np
    keras.utils.set_random_seed(11)
    rng = np.random.default_rng(11)
    # TF's CPU kernel has no NCDHW transposed convolution: no channels_first model here.
    builders = [("gan_generator", gan_generator(keras)), ("video", video_model(keras, False)),
                ("nested", nested_model(keras))]
    return save_keras_family(keras, np, rng, out, "tfk", builders,
                             [".h5", ".keras", ".weights.h5", "_legacy_weights.h5"])


def onnx_conv_transpose_model(helper, TensorProto, numpy_helper, np, rng, name, x_shape, cin, cout, kernel,
                              attrs, node_name="ct", bias=True, chain=None, declare_output_shape=True,
                              symbolic_batch=True):
    """A graph of one or two ConvTranspose nodes. `chain` adds a second node
    whose input has no shape information (as in exported graphs)."""
    w = rng.uniform(-0.5, 0.5, (cin, cout) + tuple(kernel)).astype("float32")
    inits = [numpy_helper.from_array(w, "W")]
    inputs = ["X", "W"]
    if bias:
        inits.append(numpy_helper.from_array(rng.uniform(-0.5, 0.5, (cout,)).astype("float32"), "B"))
        inputs.append("B")
    nodes = [helper.make_node("ConvTranspose", inputs, ["Y1" if chain else "Y"], name=node_name, **attrs)]
    if chain:
        cout2, kernel2, attrs2 = chain
        w2 = rng.uniform(-0.5, 0.5, (cout, cout2) + tuple(kernel2)).astype("float32")
        inits.append(numpy_helper.from_array(w2, "W2"))
        nodes.append(helper.make_node("ConvTranspose", ["Y1", "W2"], ["Y"], **attrs2))  # no name
    batch = "N" if symbolic_batch else x_shape[0]
    x_info = helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch] + list(x_shape[1:]))
    y_info = helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None] * 5)
    graph = helper.make_graph(nodes, name, [x_info], [y_info], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tconv3d-fixtures")
    model.ir_version = 8
    return model


def build_onnx(out):
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnx.external_data_helper import convert_model_to_external_data
    rng = np.random.default_rng(5)
    mk = lambda *a, **k: onnx_conv_transpose_model(helper, TensorProto, numpy_helper, np, rng, *a, **k)
    cases = {
        # What torch.onnx.export writes for ConvTranspose3d(padding=1, output_padding=1, stride=2).
        "torch_pad1_outpad1": mk("torch", (2, 3, 3, 4, 5), 3, 4, (3, 3, 3),
                                 dict(strides=[2, 2, 2], pads=[1, 1, 1, 1, 1, 1], output_padding=[1, 1, 1],
                                      dilations=[1, 1, 1], group=1, kernel_shape=[3, 3, 3]),
                                 node_name="/up1/ConvTranspose"),
        "asym_pads": mk("asym", (1, 2, 4, 3, 3), 2, 3, (3, 2, 4),
                        dict(strides=[2, 1, 3], pads=[0, 1, 2, 2, 0, 1], dilations=[1, 2, 1])),
        "same_upper": mk("su", (2, 2, 3, 4, 3), 2, 3, (4, 3, 2), dict(auto_pad="SAME_UPPER", strides=[2, 3, 2])),
        "same_lower": mk("sl", (2, 2, 3, 4, 3), 2, 3, (4, 3, 2), dict(auto_pad="SAME_LOWER", strides=[2, 3, 2])),
        "valid_dilated": mk("vd", (1, 3, 3, 3, 2), 3, 2, (2, 3, 2),
                            dict(auto_pad="VALID", dilations=[2, 1, 3], strides=[1, 2, 1]), bias=False),
        "output_shape": mk("os", (1, 2, 3, 3, 3), 2, 2, (3, 3, 3),
                           dict(strides=[2, 2, 2], output_shape=[6, 7, 5])),
        "chain_no_shapes": mk("chain", (1, 2, 2, 3, 2), 2, 3, (2, 2, 2), dict(strides=[2, 2, 2]),
                              node_name="first", chain=(2, (3, 3, 3), dict(strides=[1, 2, 1], pads=[1, 0, 1, 1, 1, 0]))),
    }
    manifest = []
    for name, model in cases.items():
        onnx.checker.check_model(model)
        path = f"onnx_{name}.onnx"
        full = os.path.join(out, path)
        if name == "output_shape":
            convert_model_to_external_data(model, all_tensors_to_one_file=True, location=f"onnx_{name}.weights",
                                           size_threshold=0)
        onnx.save_model(model, full)
        sess = ort.InferenceSession(full, providers=["CPUExecutionProvider"])
        x_shape = [d.dim_value or 2 for d in model.graph.input[0].type.tensor_type.shape.dim]
        x = rng.uniform(-1, 1, x_shape).astype("float32")
        records = {}
        if len(model.graph.node) == 1:
            node = model.graph.node[0]
            records[node.name + ":in"] = x
            records[node.name + ":out"] = sess.run(None, {"X": x})[0]
        else:
            # Every intermediate as a graph output: onnxruntime gives each node's input and output.
            mid = onnx.ModelProto()
            mid.CopyFrom(model)
            mid.graph.output.insert(0, helper.make_tensor_value_info("Y1", TensorProto.FLOAT, [None] * 5))
            onnx.save_model(mid, full + ".tmp")
            y1, y = ort.InferenceSession(full + ".tmp", providers=["CPUExecutionProvider"]).run(None, {"X": x})
            os.remove(full + ".tmp")
            records["first:in"], records["first:out"] = x, y1
            second = "ConvTranspose_1"  # the name tconv3d generates for the unnamed second node
            records[second + ":in"], records[second + ":out"] = y1, y
        np.savez_compressed(os.path.join(out, f"onnx_{name}.io.npz"), **records)
        manifest.append({"model": f"onnx_{name}", "io": f"onnx_{name}.io.npz", "files": [{"file": path}],
                         "layers": sorted({k.rsplit(":", 1)[0] for k in records}), "flavor": "onnx"})
    # Bad inputs: grouped convolution and a model with no 3D transposed convolution.
    grouped = mk("grouped", (1, 4, 2, 2, 2), 4, 1, (2, 2, 2), dict(group=2))
    onnx.save_model(grouped, os.path.join(out, "bad_onnx_grouped.onnx"))
    return manifest


def rewrite_keras_zip(source, target, edit_config=None, edit_weights=None, weights_from=None):
    """Copies a .keras zip, changing its config and/or weights on the way."""
    import shutil
    import tempfile
    import zipfile
    import h5py
    with zipfile.ZipFile(source) as z:
        members = {name: z.read(name) for name in z.namelist()}
    if weights_from:
        with zipfile.ZipFile(weights_from) as z:
            members["model.weights.h5"] = z.read("model.weights.h5")
    if edit_config:
        config = json.loads(members["config.json"])
        edit_config(config)
        members["config.json"] = json.dumps(config).encode()
    if edit_weights:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "w.h5")
            with open(path, "wb") as f:
                f.write(members["model.weights.h5"])
            with h5py.File(path, "r+") as f:
                edit_weights(f)
            shutil.copy(path, path + ".copy")
            with open(path + ".copy", "rb") as f:
                members["model.weights.h5"] = f.read()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)


def build_bad(out):
    """Broken files for the error tests, made from the good ones."""
    import numpy as np
    src = lambda name: os.path.join(out, name)
    up1 = "layers/conv3d_transpose/vars/0"  # unet_decoder's first transposed convolution

    def replace(f, path, data):
        del f[path]
        f.create_dataset(path, data=data)

    rewrite_keras_zip(src("k3_nested.keras"), src("bad_missing_weights.keras"), weights_from=src("k3_video.keras"))
    rewrite_keras_zip(src("k3_unet_decoder.keras"), src("bad_wrong_shape.keras"),
                      edit_weights=lambda f: replace(f, up1, np.transpose(f[up1][()], (4, 3, 2, 1, 0))))
    rewrite_keras_zip(src("k3_unet_decoder.keras"), src("bad_float64.keras"),
                      edit_weights=lambda f: replace(f, up1, f[up1][()].astype("float64")))

    def bad_padding(config):
        for layer in config["config"]["layers"]:
            if layer["class_name"] == "Conv3DTranspose":
                layer["config"]["padding"] = "full"
                return

    rewrite_keras_zip(src("k3_unet_decoder.keras"), src("bad_unsupported.keras"), edit_config=bad_padding)

    def no_transposed(config):
        config["config"]["layers"] = [l for l in config["config"]["layers"] if l["class_name"] == "InputLayer"]

    rewrite_keras_zip(src("k3_unet_decoder.keras"), src("bad_no_tconv.keras"), edit_config=no_transposed)
    return []


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--only", choices=["keras3", "tf_keras", "onnx", "bad"])
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if args.only:
        part = {"keras3": build_keras3, "tf_keras": build_tf_keras, "onnx": build_onnx, "bad": build_bad}[args.only](out)
        with open(os.path.join(out, f"manifest.{args.only}.json"), "w") as f:
            json.dump(part, f, indent=1)
        return
    # Keras 3 and tf_keras cannot share one process (both register `keras`): one child each.
    manifest = []
    for part in ["keras3", "tf_keras", "onnx", "bad"]:
        subprocess.run([sys.executable, __file__, "--out", out, "--only", part], check=True)
        with open(os.path.join(out, f"manifest.{part}.json")) as f:
            manifest += json.load(f)
        os.remove(os.path.join(out, f"manifest.{part}.json"))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    print(f"wrote {len(manifest)} models to {out}")


if __name__ == "__main__":
    main()
