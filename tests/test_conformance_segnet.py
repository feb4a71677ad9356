"""The zoo's segnet against a PyTorch twin: parameter names and shapes, logits, gradients."""
import numpy as np
import pytest

import minisegnet as ms
from minisegnet import models
from conftest import requires_torch, torch
from torch_twins import copy_to_torch

if torch is not None:
    tnn = torch.nn

    def conv_bn_relu(i, o):
        return [tnn.Conv2d(i, o, 3, padding=1, bias=False), tnn.BatchNorm2d(o), tnn.ReLU()]

    class TorchSegNet(tnn.Module):
        """The same network written in plain PyTorch, module names as minisegnet's."""

        def __init__(self, num_classes, widths=(16, 32, 64)):
            super().__init__()
            chans, outs = (3,) + widths, (widths[0],) + widths[:-1]
            self.backbone = tnn.Module()
            self.backbone.stages = tnn.ModuleList(
                [tnn.Sequential(*conv_bn_relu(chans[i], chans[i + 1]), *conv_bn_relu(chans[i + 1], chans[i + 1]))
                 for i in range(len(widths))])
            self.decode_head = tnn.Module()
            self.decode_head.stages = tnn.ModuleList(
                [tnn.Sequential(*conv_bn_relu(widths[i], widths[i]), *conv_bn_relu(widths[i], outs[i]))
                 for i in range(len(widths))])
            self.decode_head.classifier = tnn.Conv2d(widths[0], num_classes, 3, padding=1)

        def forward(self, x):
            record = []
            for stage in self.backbone.stages:
                x = stage(x)
                size = x.shape[2:]
                x, indices = torch.nn.functional.max_pool2d(x, 2, 2, return_indices=True)
                record.append((indices, size))
            for stage, (indices, size) in zip(reversed(self.decode_head.stages), reversed(record)):
                x = stage(torch.nn.functional.max_unpool2d(x, indices, 2, 2, output_size=size))
            return self.decode_head.classifier(x)


@requires_torch
@pytest.mark.parametrize("training", [False, True])
def test_segnet_matches_torch_twin(training):
    ms.manual_seed(0)
    model = models.create("segnet", num_classes=4).to(dtype="float64")
    twin = TorchSegNet(4).double()
    copy_to_torch(model, twin)            # the same keys, and load_state_dict checks the shapes
    model.train(training)
    twin.train(training)
    x = np.random.default_rng(1).standard_normal((2, 3, 21, 26))      # odd sizes: output_size matters
    labels = np.random.default_rng(2).integers(0, 4, (2, 21, 26))
    out = model(ms.tensor(x))
    ref = twin(torch.tensor(x))
    np.testing.assert_allclose(out.numpy(), ref.detach().numpy(), rtol=1e-7, atol=1e-9)
    loss = ms.functional.cross_entropy(out, ms.tensor(labels))
    ref_loss = torch.nn.functional.cross_entropy(ref, torch.tensor(labels))
    loss.backward()
    ref_loss.backward()
    grads = dict(model.named_parameters())
    for name, p in twin.named_parameters():
        np.testing.assert_allclose(grads[name].grad.numpy(), p.grad.numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg=name)


def test_segnet_in_the_zoo_trains_a_step_with_odd_sizes():
    model = models.create("segnet", num_classes=3, aux=True)          # aux does not apply: ignored
    img = ms.randn(2, 3, 17, 23)
    losses = model.loss(img, ms.zeros(2, 17, 23, dtype="int64"), label_smoothing=0.1)
    losses["loss"].backward()
    assert model(img).shape == (2, 3, 17, 23)
    with pytest.raises(ValueError, match="segnet has its own encoder"):
        models.create("segnet", num_classes=3, backbone="resnet18")
