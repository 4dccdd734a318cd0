"""python -m tconv3d.bench: Keras's own Conv3DTranspose against tconv3d.keras, per Keras backend."""
