"""tconv3d.torch.ConvTranspose3d and accelerate(): nn.ConvTranspose3d computed by tconv3d."""
import torch.nn as nn

from tconv3d.torch._op import conv_transpose3d


class ConvTranspose3d(nn.ConvTranspose3d):
    """torch.nn.ConvTranspose3d whose forward runs tconv3d.torch.conv_transpose3d.

    Same constructor, parameters, state_dict and forward(input, output_size=None);
    it adds no state, so a state_dict loads into either class.
    """

    def forward(self, input, output_size=None):
        if self.padding_mode != "zeros":
            raise ValueError("Only `zeros` padding mode is supported for ConvTranspose3d")
        # PyTorch's own rule turns output_size into output_padding (and rejects sizes out of range).
        output_padding = self._output_padding(input, output_size, self.stride, self.padding, self.kernel_size, 3,
                                              self.dilation)
        # A tuple (hashable) lets a repeated call take the fast route.
        return conv_transpose3d(input, self.weight, self.bias, self.stride, self.padding, tuple(output_padding),
                                self.groups, self.dilation)


def accelerate(module):
    """Makes every torch.nn.ConvTranspose3d in module's tree (module itself included) a
    tconv3d.torch.ConvTranspose3d, in place, and returns module.

    The class is swapped on the existing objects, so parameters, buffers, hooks
    and any optimizer holding them stay as they are. Subclasses of
    nn.ConvTranspose3d are left alone: their forward may differ.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"accelerate expects a torch.nn.Module, got {type(module).__name__}")
    for m in module.modules():
        if type(m) is nn.ConvTranspose3d:
            m.__class__ = ConvTranspose3d
    return module
