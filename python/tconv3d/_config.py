"""Keras layer configs as the C++ parser reads them (JSON text)."""
import json

# The Keras argument names the one-shot functions accept.
KERAS_ARGUMENTS = ("strides", "padding", "output_padding", "data_format", "dilation_rate", "activation")


def _to_json_value(value):
    # get_config() may hold NumPy scalars/arrays, or objects Keras serializes.
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "get_config"):
        return {"class_name": type(value).__name__, "config": value.get_config()}
    raise TypeError(f"config: cannot read a value of type {type(value).__name__}: {value!r}")


def config_json(config):
    """A Keras config (get_config() dict, {"class_name", "config"} dict, or JSON text) as JSON text."""
    if isinstance(config, str):
        return config
    if isinstance(config, dict):
        return json.dumps(config, default=_to_json_value)
    raise TypeError(f"config: expected a dict or a JSON string, got {type(config).__name__}")


def config_from_arguments(kernel_shape, use_bias, arguments):
    """The get_config() dict of the layer that Keras's functional arguments describe."""
    unknown = sorted(set(arguments) - set(KERAS_ARGUMENTS))
    if unknown:
        raise TypeError(f"unexpected argument(s) {', '.join(unknown)}; expected some of {', '.join(KERAS_ARGUMENTS)}")
    if len(kernel_shape) != 5:
        raise ValueError(f"kernel: expected a 5-D kernel (kd, kh, kw, filters, in_channels), got shape {tuple(kernel_shape)}")
    config = {
        "filters": int(kernel_shape[3]),
        "kernel_size": [int(k) for k in kernel_shape[:3]],
        "use_bias": bool(use_bias),
        "strides": 1,
        "padding": "valid",
        "output_padding": None,
        "data_format": "channels_last",
        "dilation_rate": 1,
        "activation": "linear",
    }
    for name, value in arguments.items():
        if value is not None or name == "output_padding":
            config[name] = _plain(value)
    return config


def _plain(value):
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    if callable(value):
        # Keras accepts activation functions; the C++ library knows them by name.
        name = getattr(value, "__name__", None)
        if not name:
            raise TypeError(f"activation: cannot name {value!r}")
        return name
    return value
