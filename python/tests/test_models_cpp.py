"""tconv3d.load_model (the C++ loader) against the recorded inputs and outputs of the bundled models."""
import json

import numpy as np
import pytest

import tconv3d
from conftest import MODELS, REPO, assert_close, requires_backend

# Independent of Keras's backend: run once, in the JAX session.
pytestmark = requires_backend("jax")

MANIFEST = json.loads((MODELS / "manifest.json").read_text())
CASES = [(entry, f) for entry in MANIFEST for f in entry["files"]]


@pytest.mark.parametrize("entry, file", CASES, ids=[f["file"] for _, f in CASES])
def test_model_file_matches_recorded_outputs(entry, file):
    config = MODELS / file["config"] if "config" in file else None
    layers = tconv3d.load_model(MODELS / file["file"], config_path=config)
    io = np.load(MODELS / entry["io"])
    names = sorted({key.rsplit(":", 1)[0] for key in io.files})
    assert sorted(layers) == names
    for name in names:
        layer = layers[name]
        x = io[name + ":in"]
        assert_close(layer(x), io[name + ":out"], f"{file['file']} {name}")
        assert layer.output_shape(x.shape) == io[name + ":out"].shape
        assert layer.describe(x.shape)[0]


def test_demo_decoder_layers():
    layers = tconv3d.load_model(REPO / "examples" / "models" / "unet3d_decoder.keras")
    assert set(layers) == {"up1", "up2", "up3", "head"}
    y = layers["up1"](np.ones((1, 6, 6, 6, 256), np.float32))
    assert y.shape == (1, 12, 12, 12, 128) and np.all(y >= 0)  # relu
