"""Q4: how big is the output, and how far does one output pixel see?

One convolution layer along one axis has a kernel size k, a stride s, a padding p
(added on both sides) and a dilation d (the gap between kernel taps: a dilated kernel
spans d(k - 1) + 1 input cells but still has k weights - the atrous convolution of
DeepLab). For an input of length n:

* the **output size** counts the positions where the whole (dilated) kernel fits in
  the padded input of length n + 2p, stepping by s;
* the **receptive field** of a stack of layers is the length of the window of the
  *input* that can influence one output pixel of the last layer (holes included: a
  dilated kernel skips cells inside its span, they still count).

Stacked layers compound: after a layer of stride s, moving one step in the next layer
moves s times as far in the input. Check with
``minisegnet grade exercises/q4_conv_output_size.py``.
"""


def conv_stack_geometry(in_size, layers):
    """Output size and receptive field of convolutions applied one after another.

    Args:
        in_size (int): length of the input along one axis (an image is square here).
        layers (list of tuples): ``(kernel_size, stride, padding, dilation)`` of each
            layer, first layer first, e.g. ``[(3, 1, 1, 1), (3, 1, 2, 2)]``.

    Returns:
        ``(out_size, receptive_field)``, two ints. Example: one 3x3 convolution without
        padding on a 32-pixel input gives ``(30, 3)``.
    """
    # ---- YOUR CODE BEGINS ----
    raise NotImplementedError("q4_conv_output_size: walk through the layers")
    # ---- YOUR CODE ENDS ----
    return out_size, receptive_field
