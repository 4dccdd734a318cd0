"""Keras 3's activations in JAX, for the backward pass of the differentiable op.

The forward pass fuses the activation in C++; differentiation needs it in
JAX so autodiff can see it. Keras's own layer passes its activation function
instead, so this table only serves the functional tconv3d.jax op.
"""
import jax
import jax.numpy as jnp


def _shrink(threshold, soft):
    def f(x):
        if soft:
            return jnp.where(x > threshold, x - threshold, jnp.where(x < -threshold, x + threshold, 0.0))
        return jnp.where(jnp.abs(x) > threshold, x, 0.0)
    return f


# Keras 3 defaults (keras/src/activations/activations.py): leaky_relu slope 0.2,
# exact gelu, squareplus b=4, shrink thresholds 0.5, softmax/glu over the last axis.
ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": jax.nn.relu,
    "relu6": jax.nn.relu6,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.2),
    "elu": jax.nn.elu,
    "celu": jax.nn.celu,
    "selu": jax.nn.selu,
    "softplus": jax.nn.softplus,
    "softsign": jax.nn.soft_sign,
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "hard_silu": jax.nn.hard_silu,
    "hard_swish": jax.nn.hard_silu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "tanh": jnp.tanh,
    "tanh_shrink": lambda x: x - jnp.tanh(x),
    "hard_tanh": lambda x: jnp.clip(x, -1.0, 1.0),
    "sigmoid": jax.nn.sigmoid,
    "hard_sigmoid": jax.nn.hard_sigmoid,
    "log_sigmoid": jax.nn.log_sigmoid,
    "exponential": jnp.exp,
    "mish": lambda x: x * jnp.tanh(jax.nn.softplus(x)),
    "squareplus": lambda x: (x + jnp.sqrt(x * x + 4.0)) / 2.0,
    "soft_shrink": _shrink(0.5, soft=True),
    "hard_shrink": _shrink(0.5, soft=False),
    "softmax": lambda x: jax.nn.softmax(x, axis=-1),
    "log_softmax": lambda x: jax.nn.log_softmax(x, axis=-1),
    "glu": lambda x: jax.nn.glu(x, axis=-1),
}


def activation_function(name):
    """The JAX function for a Keras activation name; NotImplementedError names the ones not covered."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise NotImplementedError(
            f"activation: tconv3d.jax cannot differentiate {name!r} yet (it can run it forward); "
            f"differentiable ones: {', '.join(sorted(ACTIVATIONS))}") from None
