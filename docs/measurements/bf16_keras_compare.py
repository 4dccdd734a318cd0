# tconv3d --dtype bf16 against Keras 3's mixed_bfloat16 Conv3DTranspose (JAX backend).
# Needs keras, jax, ml_dtypes; run from the repository root after building:
#   KERAS_BACKEND=jax python docs/measurements/bf16_keras_compare.py
import os, subprocess, json, numpy as np, ml_dtypes
os.environ.setdefault("KERAS_BACKEND", "jax")
import keras
cli = os.environ.get('TCONV3D_CLI', 'build/bin/tconv3d')
rng = np.random.default_rng(1)
for cin, cout, k, s, pad, act, shape in [(64, 32, 3, 2, 'same', 'relu', (1, 6, 6, 6)), (256, 128, 2, 2, 'valid', 'linear', (1, 4, 4, 4)),
                                       (23, 20, 3, 2, 'same', 'elu', (2, 5, 6, 7)), (32, 4, 4, 2, 'same', 'sigmoid', (1, 6, 6, 6))]:
    layer = keras.layers.Conv3DTranspose(cout, k, strides=s, padding=pad, activation=act, dtype='mixed_bfloat16')
    x = rng.standard_normal(shape + (cin,)).astype(np.float32)
    layer.build(x.shape)
    kern = layer.kernel.numpy().astype(np.float32)
    bias = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    layer.bias.assign(bias)
    xb = x.astype(ml_dtypes.bfloat16)
    y_keras = np.asarray(layer(xb)).astype(np.float32)
    cfg = {"filters": cout, "kernel_size": [k]*3, "strides": [s]*3, "padding": pad, "activation": act, "use_bias": True}
    open('/tmp/kl.json', 'w').write(json.dumps(cfg))
    np.save('/tmp/kx.npy', xb.view(np.uint16)); np.save('/tmp/kk.npy', kern); np.save('/tmp/kb.npy', bias)
    outs = {}
    for be in ['xbyak', 'reference']:
        r = subprocess.run([cli, 'run', '--layer', '/tmp/kl.json', '--input', '/tmp/kx.npy', '--kernel', '/tmp/kk.npy', '--bias', '/tmp/kb.npy',
                            '--output', '/tmp/ky.npy', '--dtype', 'bf16', '--backend', be], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        outs[be] = np.load('/tmp/ky.npy').view(ml_dtypes.bfloat16).astype(np.float32)
    # float64 exact on bf16-rounded operands, for scale
    red = cin * (k // s) ** 3 if k >= s else cin
    for be, y in outs.items():
        d = np.abs(y - y_keras)
        # one bf16 ulp of each Keras value (8 significant bits)
        ulp = np.exp2(np.floor(np.log2(np.maximum(np.abs(y_keras), 2.0**-120))) - 7)
        print(f"cin{cin} cout{cout} k{k}s{s} {act:8s} reduction~{red:5d} {be:9s} vs keras: max|d| {d.max():.4g} "
              f"(max|y| {np.abs(y_keras).max():.3g}), > 1 ulp: {np.mean(d > ulp)*100:.2f}%, "
              f"> 2 ulp: {np.mean(d > 2*ulp)*100:.2f}%")
    print("   xbyak vs reference: max|d|", np.abs(outs['xbyak'] - outs['reference']).max())
