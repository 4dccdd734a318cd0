#!/usr/bin/env python3
"""Builds the model that `tconv3d demo` specializes: a 3D U-Net decoder.

Real Keras 3 builds a Functional model of four Conv3DTranspose layers at
realistic channel counts, from a (6, 6, 6, 256) bottleneck to a 4-class
96^3 volume, with seeded random weights (biases too: Keras starts them at
zero, which would hide a bias mistake), and saves it as
examples/models/unet3d_decoder.keras (about 2 MB).

No layer input/output record is kept: the activations reach ~30 MB. The demo
checks every specialized layer against tconv3d's reference kernel, and
tests/model_test.cc checks the loader against Keras on small fixtures.

Usage: KERAS_BACKEND=jax /opt/kvenv/bin/python scripts/make_demo_model.py [--out FILE]
"""
import argparse
import os

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "examples", "models", "unet3d_decoder.keras")
SEED = 2024


def build(keras):
    L = keras.layers
    bottleneck = keras.Input((6, 6, 6, 256), name="bottleneck")
    x = L.Conv3DTranspose(128, 2, strides=2, activation="relu", name="up1")(bottleneck)
    x = L.Conv3DTranspose(64, 3, strides=2, padding="same", activation="relu", name="up2")(x)
    x = L.Conv3DTranspose(32, 2, strides=2, activation="relu", name="up3")(x)
    out = L.Conv3DTranspose(4, 4, strides=2, padding="same", activation="sigmoid", name="head")(x)
    return keras.Model(bottleneck, out, name="unet3d_decoder")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args()
    os.environ.setdefault("KERAS_BACKEND", "jax")
    import keras
    import numpy as np

    keras.utils.set_random_seed(SEED)
    model = build(keras)
    rng = np.random.default_rng(SEED)
    for layer in model.layers:
        weights = layer.get_weights()
        if len(weights) == 2:
            weights[1] = rng.uniform(-0.1, 0.1, weights[1].shape).astype("float32")
            layer.set_weights(weights)
    # One forward pass proves the saved model runs in Keras as it stands.
    sample = rng.uniform(-1, 1, (1, 6, 6, 6, 256)).astype("float32")
    prediction = model.predict(sample, verbose=0)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    model.save(args.out)
    print(f"{args.out}: {os.path.getsize(args.out)} bytes, output {prediction.shape}, "
          f"mean {float(prediction.mean()):.4f}")
    for layer in model.layers[1:]:
        print(f"  {layer.name}: {tuple(layer.input.shape)} -> {tuple(layer.output.shape)}")


if __name__ == "__main__":
    main()
