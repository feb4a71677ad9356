"""Models: heads, backbones, segmentors and the zoo, checked against PyTorch twins.

Every head is rebuilt in PyTorch (the twins below) with the same structure; weights are
copied by state-dict key, so the twin also checks that the key names match
MMSegmentation / torchvision. Outputs, input gradients and parameter gradients are
compared in float64, in train mode (BatchNorm batch statistics) and eval mode.
"""
import sys

import numpy as np
import pytest

import minisegnet as ms
from minisegnet import nn
from minisegnet import models
from minisegnet.models import (ASPPHead, ASPPModule, ConvModule, DepthwiseSeparableASPPHead, EncoderDecoder,
                               FCN8sHead, FCNHead, PSPHead, PyramidPooling, ResNet, load_torch_weights)
from conftest import requires_torch, torch

RTOL, ATOL = 1e-6, 1e-8
ZOO = ["fcn", "fcn8s", "pspnet", "deeplabv3", "deeplabv3plus"]
from torch_twins import STAGE_DILATIONS, copy_to_torch, randomize


# ---------------------------------------------------------------------------- PyTorch twins
if torch is not None:
    from torch_twins import (TF, TASPPHead, TASPPModule, TDSASPPHead, TFCN8sHead, TFCNHead, TPSPHead,  # noqa: F401
                             TPyramidPooling, TResNet, t_resize, tnn)

# ---------------------------------------------------------------------------- helpers


def close(a, b, what):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL, err_msg=what)


def compare_params_grads(ms_module, t_module):
    t_params = dict(t_module.named_parameters())
    for name, p in ms_module.named_parameters():
        tp = t_params[name]
        assert p.grad is not None, f"no gradient reached {name}"
        close(p.grad.numpy(), tp.grad.numpy(), f"gradient of {name}")


def run_parity(ms_module, t_module, ms_fn, t_fn, shapes, train, seed=0, device="cpu"):
    ms_module.double()
    t_module.double()
    randomize(ms_module, seed)
    copy_to_torch(ms_module, t_module)
    ms_module.to(device)
    ms_module.train(train)
    t_module.train(train)
    rng = np.random.default_rng(seed + 1)
    arrays = [rng.standard_normal(s) for s in shapes]
    xs = [ms.tensor(a, device=device, requires_grad=True) for a in arrays]
    ts = [torch.tensor(a, requires_grad=True) for a in arrays]
    out, ref = ms_fn(xs), t_fn(ts)
    assert out.shape == tuple(ref.shape)
    close(out.numpy(), ref.detach().numpy(), "forward output")
    g = rng.standard_normal(out.shape)
    out.backward(ms.tensor(g, device=device))
    ref.backward(torch.tensor(g))
    for i, (x, t) in enumerate(zip(xs, ts)):
        if t.grad is not None:
            close(x.grad.numpy(), t.grad.numpy(), f"gradient of input {i}")
    compare_params_grads(ms_module, t_module)
    if train:          # running statistics were updated the same way
        t_sd = t_module.state_dict()
        for k, v in ms_module.state_dict().items():
            if k.endswith(("running_mean", "running_var")):
                close(v, t_sd[k].numpy(), k)


def head_case(name):
    """(minisegnet module, torch twin, minisegnet fn, torch fn, input shapes)."""
    kw = dict(dropout_ratio=0)
    if name == "fcn":
        m = FCNHead(num_convs=2, kernel_size=3, concat_input=True, dilation=2, in_channels=6, channels=5,
                    num_classes=3, **kw)
        return m, TFCNHead(6, 5, 3, dilation=2), m, None, [(2, 4, 17, 21), (2, 6, 9, 11)]
    if name == "fcn_aux":
        m = FCNHead(num_convs=1, concat_input=False, in_channels=4, channels=3, num_classes=3, in_index=0, **kw)
        return m, TFCNHead(4, 3, 3, num_convs=1, concat_input=False, in_index=0), m, None, \
            [(2, 4, 9, 11), (2, 6, 5, 6)]
    if name == "pyramid_pooling":
        m, t = PyramidPooling(8, sizes=(1, 2, 3, 6)), TPyramidPooling(8)
        return m, t, (lambda xs: m(xs[0])), (lambda ts: t(ts[0])), [(2, 8, 9, 11)]
    if name == "psp":
        m = PSPHead(in_channels=8, channels=5, num_classes=3, **kw)
        return m, TPSPHead(8, 5, 3), m, None, [(2, 8, 9, 11)]
    if name == "aspp_module":
        m = ASPPModule((1, 2, 3), 6, 4)
        t = TASPPModule((1, 2, 3), 6, 4)
        return m, t, (lambda xs: ms.cat(m(xs[0]), dim=1)), (lambda ts: torch.cat(t(ts[0]), dim=1)), \
            [(2, 6, 7, 9)]
    if name == "aspp":
        m = ASPPHead(dilations=(1, 2, 3), in_channels=6, channels=4, num_classes=3, align_corners=True, **kw)
        return m, TASPPHead(6, 4, 3, (1, 2, 3), align_corners=True), m, None, [(2, 6, 7, 9)]
    if name == "dsaspp":
        m = DepthwiseSeparableASPPHead(c1_in_channels=4, c1_channels=3, dilations=(1, 2, 3), in_channels=6,
                                       channels=5, num_classes=3, **kw)
        return m, TDSASPPHead(6, 5, 3, (1, 2, 3), 4, 3), m, None, [(2, 4, 17, 21), (2, 6, 9, 11)]
    if name == "fcn8s_resize":         # floor-mode sizes: upsampled maps are resized up to the skip's size
        m = FCN8sHead((4, 5, 6), 5, 3, **kw)
        return m, TFCN8sHead((4, 5, 6), 5, 3), m, None, [(2, 4, 10, 11), (2, 5, 5, 5), (2, 6, 2, 2)]
    if name == "fcn8s_crop":           # ceil-mode sizes: upsampled maps are cropped (the paper's crop layer)
        m = FCN8sHead((4, 5, 6), 5, 3, **kw)
        return m, TFCN8sHead((4, 5, 6), 5, 3), m, None, [(2, 4, 9, 11), (2, 5, 5, 6), (2, 6, 3, 3)]
    raise KeyError(name)


# ---------------------------------------------------------------------------- heads vs PyTorch
@requires_torch
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ["fcn", "fcn_aux", "pyramid_pooling", "psp", "aspp_module", "aspp", "dsaspp",
                                  "fcn8s_resize", "fcn8s_crop"])
def test_head_matches_pytorch_twin(name, train, device):
    m, t, ms_fn, t_fn, shapes = head_case(name)
    run_parity(m, t, ms_fn, t_fn or t, shapes, train, device=device)


def test_conv_module_layers_and_bias():
    with_bn = ConvModule(4, 6, 3, padding=1)
    assert isinstance(with_bn.conv, nn.Conv2d) and isinstance(with_bn.bn, nn.BatchNorm2d)
    assert isinstance(with_bn.activate, nn.ReLU)
    assert with_bn.conv.bias is None                      # BN's shift makes a conv bias redundant
    plain = ConvModule(4, 6, 1, norm=False, act=False)
    assert plain.conv.bias is not None
    assert sorted(plain.state_dict()) == ["conv.bias", "conv.weight"]
    x = ms.randn(2, 4, 5, 5)
    assert with_bn(x).shape == (2, 6, 5, 5)
    assert (with_bn(x).numpy() >= 0).all()


def test_aspp_branch_kernels_and_head_attributes():
    head = ASPPHead(dilations=(1, 6, 12, 18), in_channels=8, channels=4, num_classes=2)
    convs = [branch.conv for branch in head.aspp_modules]
    assert [c.weight.shape[2:] for c in convs] == [(1, 1), (3, 3), (3, 3), (3, 3)]
    assert [tuple(np.broadcast_to(c.dilation, 2)) for c in convs] == [(1, 1), (6, 6), (12, 12), (18, 18)]
    assert [tuple(np.broadcast_to(c.padding, 2)) for c in convs] == [(0, 0), (6, 6), (12, 12), (18, 18)]
    assert isinstance(head.image_pool[0], nn.AdaptiveAvgPool2d)
    assert head.image_pool[1].conv.weight.shape == (4, 8, 1, 1)
    assert head.bottleneck.conv.weight.shape == (4, 5 * 4, 3, 3)
    assert head.conv_seg.weight.shape == (2, 4, 1, 1)
    assert isinstance(head.dropout, nn.Dropout2d)
    assert ASPPHead(in_channels=8, channels=4, num_classes=2, dropout_ratio=0).dropout is None


def test_pyramid_pooling_channels_input_first():
    pp = PyramidPooling(8).eval()
    x = ms.randn(2, 8, 7, 7)
    out = pp(x)
    assert out.shape == (2, 8 + 4 * 2, 7, 7)
    np.testing.assert_array_equal(out.numpy()[:, :8], x.numpy())


def test_fcn8s_upsampling_starts_bilinear():
    head = FCN8sHead((4, 5, 6), 5, 3)
    taps4 = np.array([0.25, 0.75, 0.75, 0.25])             # bilinear x2: 1 - |i - 1.5| / 2
    w = head.upscore2.weight.numpy()
    assert w.shape == (3, 3, 4, 4)
    for c in range(3):
        np.testing.assert_allclose(w[c, c], np.outer(taps4, taps4))
        for d in range(3):
            if d != c:
                assert not w[c, d].any()
    taps16 = 1 - np.abs(np.arange(16) - 7.5) / 8            # bilinear x8
    np.testing.assert_allclose(head.upscore8.weight.numpy()[1, 1], np.outer(taps16, taps16))
    assert not head.score_pool4.weight.numpy().any() and not head.score_pool3.weight.numpy().any()


# ---------------------------------------------------------------------------- backbones
@pytest.mark.parametrize("output_stride, sizes", [(32, [16, 8, 4, 2]), (16, [16, 8, 4, 4]), (8, [16, 8, 8, 8])])
def test_output_stride_feature_sizes_and_dilations(output_stride, sizes):
    net = models.resnet_tiny(output_stride=output_stride).eval()
    feats = net(ms.randn(1, 3, 64, 64))
    assert [f.shape[2] for f in feats] == sizes and [f.shape[3] for f in feats] == sizes
    assert [f.shape[1] for f in feats] == [16, 32, 64, 128] == list(net.out_channels)
    assert net.strides == tuple(64 // s for s in sizes)
    for i, d in enumerate(STAGE_DILATIONS[output_stride]):
        block = getattr(net, f"layer{i + 1}")[0]
        for conv in (block.conv1, block.conv2):
            assert tuple(np.broadcast_to(conv.dilation, 2)) == (d, d)
            assert tuple(np.broadcast_to(conv.padding, 2)) == (d, d)


def test_multi_grid_multiplies_stage4_dilations():
    net = ResNet((1, 1, 1, 3), base_width=4, output_stride=16, multi_grid=(1, 2, 4))
    assert [tuple(np.broadcast_to(b.conv1.dilation, 2)) for b in net.layer4] == [(2, 2), (4, 4), (8, 8)]
    net8 = ResNet((1, 1, 1, 3), base_width=4, output_stride=8, multi_grid=(1, 2, 4))
    assert [tuple(np.broadcast_to(b.conv2.dilation, 2)) for b in net8.layer4] == [(4, 4), (8, 8), (16, 16)]
    assert tuple(np.broadcast_to(net8.layer3[0].conv1.dilation, 2)) == (2, 2)


def test_resnet_parameter_counts_match_torchvision():
    # torchvision: resnet18 11,689,512 and resnet34 21,797,672 parameters, of which the
    # ImageNet classifier fc has 512 * 1000 + 1000 = 513,000
    assert sum(p.numel() for p in models.resnet18().parameters()) == 11_689_512 - 513_000
    assert sum(p.numel() for p in models.resnet34().parameters()) == 21_797_672 - 513_000
    keys = models.resnet18().state_dict()
    for k in ["conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight", "layer1.1.bn2.bias",
              "layer2.0.downsample.0.weight", "layer2.0.downsample.1.running_var", "layer4.1.conv2.weight"]:
        assert k in keys


def test_vgg_tiny_strides():
    net = models.vgg_tiny().eval()
    feats = net(ms.randn(1, 3, 37, 53))
    # floor-mode 2x2 pooling: 37 -> 18 -> 9 -> 4 -> 2 -> 1, 53 -> 26 -> 13 -> 6 -> 3 -> 1
    assert [f.shape[2:] for f in feats] == [(9, 13), (4, 6), (2, 3), (1, 1)]
    assert [f.shape[1] for f in feats] == list(net.out_channels)
    assert "features.0.weight" in net.state_dict() and "features.1.running_mean" in net.state_dict()


@requires_torch
@pytest.mark.parametrize("output_stride", [32, 8])
def test_load_torch_weights_round_trip(tmp_path, output_stride):
    torch.manual_seed(0)
    twin = TResNet((1, 1, 1, 1), 16, output_stride, fc_classes=10).double()
    with torch.no_grad():
        for name, b in twin.named_buffers():
            if name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                b.normal_(0, 0.2)
        for name, p in twin.named_parameters():
            if p.ndim == 1:
                p.uniform_(0.5, 1.5)
    path = tmp_path / "resnet_tiny.pth"
    torch.save(twin.state_dict(), path)

    net = models.resnet_tiny(output_stride=output_stride).double().eval()
    result = load_torch_weights(net, str(path))
    assert result.missing_keys == []
    assert result.dropped_keys == ["fc.bias", "fc.weight"]
    assert all(k.endswith("num_batches_tracked") for k in result.unexpected_keys)
    x = np.random.default_rng(0).standard_normal((2, 3, 37, 53))
    twin.eval()
    with torch.no_grad():
        refs = twin(torch.tensor(x))
    for f, r in zip(net(ms.tensor(x)), refs):
        close(f.numpy(), r.numpy(), "backbone feature after loading torch weights")

    model = models.create("fcn", 3, pretrained=str(path), output_stride=output_stride)
    np.testing.assert_allclose(model.backbone.layer3[0].conv1.weight.numpy(),
                               twin.layer3[0].conv1.weight.detach().numpy(), rtol=1e-6)


@requires_torch
def test_load_torch_weights_errors(tmp_path):
    net = models.resnet_tiny()
    state = {"conv1.weight": torch.zeros(16, 3, 7, 7)}
    with pytest.raises(ValueError, match="strict.*missing keys"):
        load_torch_weights(net, state, strict=True)
    with pytest.warns(UserWarning, match="not in the weights"):
        result = load_torch_weights(net, state)
    assert "bn1.weight" in result.missing_keys
    with pytest.raises(ValueError, match="shape mismatch for 'conv1.weight'"):
        load_torch_weights(net, {"conv1.weight": torch.zeros(16, 3, 3, 3)})
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_torch_weights(net, str(tmp_path / "nothing.pth"))
    with pytest.raises(TypeError, match="must be a minisegnet Module"):
        load_torch_weights("resnet", state)


def test_load_torch_weights_without_torch_says_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch", None)             # import torch now raises ImportError
    with pytest.raises(ImportError, match="needs PyTorch.*pip install torch"):
        load_torch_weights(models.resnet_tiny(), str(tmp_path / "w.pth"))


# ---------------------------------------------------------------------------- segmentors and the zoo
@pytest.mark.parametrize("name", ZOO)
def test_zoo_model_odd_size_backward_and_checkpoint(name, tmp_path, device):
    ms.manual_seed(0)
    model = models.create(name, num_classes=3, channels=16, aux=True).to(device)
    labels = np.random.default_rng(0).integers(0, 3, (2, 37, 53))
    labels[:, :3] = 255                                    # some ignored pixels
    img, target = ms.randn(2, 3, 37, 53, device=device), ms.tensor(labels, device=device)
    assert model(img).shape == (2, 3, 37, 53)
    losses = model.loss(img, target)
    assert set(losses) == {"loss", "loss_decode", "loss_aux"}
    losses["loss"].backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{name}: no gradient reached {pname}"
        assert np.isfinite(p.grad.numpy()).all(), f"{name}: gradient of {pname} is not finite"

    model.eval()
    expected = model(img).numpy()
    path = tmp_path / f"{name}.npz"
    ms.save(model.state_dict(), path)
    ms.manual_seed(1)
    other = models.create(name, num_classes=3, channels=16, aux=True).to(device).eval()
    other.load_state_dict(ms.load(path))
    np.testing.assert_array_equal(other(img).numpy(), expected)
    pred = other.predict(img)
    assert pred.shape == (2, 37, 53) and pred.dtype == np.int64


@requires_torch
def test_encoder_decoder_loss_and_gradients_match_pytorch():
    """The whole FCN (resnet_tiny at output stride 8 + FCNHead + auxiliary FCNHead on c3):
    logits at the input size, cross-entropy with ignore_index 255, aux weight 0.4, and
    the optional Dice term."""
    model = models.create("fcn", num_classes=4, channels=8, aux=True, dropout_ratio=0)
    twin = tnn.Module()
    twin.backbone = TResNet((1, 1, 1, 1), 16, output_stride=8)
    twin.decode_head = TFCNHead(128, 8, 4, in_index=3)
    twin.auxiliary_head = TFCNHead(64, 4, 4, num_convs=1, concat_input=False, in_index=2)
    model.double()
    twin.double()
    randomize(model, 3)
    copy_to_torch(model, twin)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 29, 35))
    y = rng.integers(0, 4, (2, 29, 35))
    y[0, :5] = 255
    losses = model.loss(ms.tensor(x), ms.tensor(y), dice_weight=0.5)
    tx, ty = torch.tensor(x), torch.tensor(y)
    feats = twin.backbone(tx)
    logits = t_resize(twin.decode_head(feats), (29, 35))
    main = TF.cross_entropy(logits, ty, ignore_index=255)
    aux = TF.cross_entropy(t_resize(twin.auxiliary_head(feats), (29, 35)), ty, ignore_index=255)
    valid = (ty != 255)[:, None].double()
    prob = logits.softmax(dim=1) * valid
    onehot = TF.one_hot(ty.clamp(max=3), 4).permute(0, 3, 1, 2).double() * valid
    dice = 1 - ((2 * (prob * onehot).sum((0, 2, 3)) + 1) / (prob.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1)).mean()
    total = main + 0.4 * aux + 0.5 * dice
    close(losses["loss_decode"].item(), main.item(), "loss_decode")
    close(losses["loss_aux"].item(), aux.item(), "loss_aux")
    close(losses["loss_dice"].item(), dice.item(), "loss_dice")
    close(losses["loss"].item(), total.item(), "loss")
    losses["loss"].backward()
    total.backward()
    compare_params_grads(model, twin)
    model.eval()
    twin.eval()
    with torch.no_grad():
        ref = t_resize(twin.decode_head(twin.backbone(tx)), (29, 35))
    close(model(ms.tensor(x)).numpy(), ref.numpy(), "eval-mode logits")


def test_list_models_and_defaults():
    names = models.list_models()
    assert set(ZOO) <= set(names)       # segnet and the real-time models have their own test files
    assert all(isinstance(d, str) and d for d in names.values())
    assert isinstance(models.create("fcn8s", 2).backbone, models.VGG)
    deeplab = models.create("deeplabv3", 2)
    assert deeplab.backbone.output_stride == 8
    assert deeplab.decode_head.dilations == (1, 12, 24, 36)
    assert models.create("deeplabv3", 2, output_stride=16).decode_head.dilations == (1, 6, 12, 18)
    assert deeplab.auxiliary_head is None
    assert set(deeplab.loss(ms.randn(2, 3, 16, 16), ms.zeros(2, 16, 16, dtype="int64"))) == {"loss", "loss_decode"}


# ---------------------------------------------------------------------------- errors that teach
def test_image_pool_batch_size_one_in_training_is_a_clear_error():
    model = models.create("deeplabv3", 2, channels=8)
    with pytest.raises(ValueError, match=r"image-pool branch.*batch size of at least 2.*model\.eval\(\)"):
        model(ms.randn(1, 3, 32, 32))
    model.eval()
    assert model(ms.randn(1, 3, 32, 32)).shape == (1, 2, 32, 32)
    psp = models.create("pspnet", 2, channels=8)
    with pytest.raises(ValueError, match=r"1x1 pyramid-pooling branch.*batch size of at least 2"):
        psp(ms.randn(1, 3, 32, 32))


def test_unknown_names_list_the_available_ones():
    with pytest.raises(ValueError, match="unknown model 'unet'; available models: .*deeplabv3, deeplabv3plus, "
                                         ".*fcn, fcn8s, pspnet"):
        models.create("unet", 3)
    with pytest.raises(ValueError, match="unknown backbone 'resnet50'; available: resnet18, resnet34, "
                                         "resnet_tiny, vgg_tiny"):
        models.create("fcn", 3, backbone="resnet50")


@pytest.mark.parametrize("build, message", [
    (lambda: models.create("fcn8s", 3, output_stride=8), "fcn8s needs output_stride=32"),
    (lambda: models.create("fcn", 3, output_stride=4), "output_stride must be 8, 16 or 32, got 4"),
    (lambda: models.create("fcn", 3, backbone="vgg_tiny", output_stride=8),
     "vgg_tiny: only output_stride=32 is available"),
    (lambda: ResNet(output_stride=12), "output_stride must be 32, 16 or 8, got 12"),
    (lambda: ResNet(depth=50), r"depth must be one of \[18, 34\]"),
    (lambda: ResNet((2, 2, 2, 2), multi_grid=(1, 2, 4)), r"one factor per block of stage 4 \(2 blocks\)"),
    (lambda: PyramidPooling(2), "in_channels must be >= 4"),
    (lambda: FCNHead(num_convs=0, in_channels=4, channels=8, num_classes=2), "num_convs must be >= 1"),
    (lambda: FCNHead(in_channels=4, channels=8, num_classes=0), "num_classes must be a positive integer"),
    (lambda: ASPPHead(in_channels=4, channels=8, num_classes=2, dropout_ratio=1.5), r"dropout_ratio must be in"),
    (lambda: ASPPModule((1, 0), 4, 4), "dilations must be a non-empty list of positive integers"),
    (lambda: ConvModule(0, 4, 3), "in_channels must be a positive integer"),
    (lambda: FCN8sHead(64, 8, 2), "in_channels must be the channel counts"),
    (lambda: EncoderDecoder("resnet_tiny", FCNHead(in_channels=8, channels=4, num_classes=2)),
     "backbone must be a Module, got str"),
    (lambda: models.FCN8s(models.resnet_tiny(output_stride=8), 2), r"strides \(8, 16, 32\)"),
])
def test_bad_arguments_are_named(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_bad_inputs_are_named():
    head = FCNHead(in_channels=8, channels=4, num_classes=2, in_index=3)
    with pytest.raises(ValueError, match=r"FCNHead: expected features of shape \(N, 8, H, W\), got \(2, 6, 5, 5\)"):
        head([ms.randn(2, 6, 5, 5)] * 4)
    with pytest.raises(ValueError, match="in_index=3 but the backbone gave 2 feature maps"):
        head([ms.randn(2, 8, 5, 5)] * 2)
    model = models.create("fcn", 2, channels=8)
    with pytest.raises(ValueError, match=r"expected images of shape \(N, 3, H, W\), got \(2, 1, 16, 16\)"):
        model(ms.randn(2, 1, 16, 16))
    img = ms.randn(2, 3, 16, 16)
    with pytest.raises(ValueError, match=r"expected target of shape \(2, 16, 16\)"):
        model.loss(img, ms.zeros(2, 8, 8, dtype="int64"))
    with pytest.raises(TypeError, match="integer class labels"):
        model.loss(img, ms.zeros(2, 16, 16))
    with pytest.raises(ValueError, match="resize: expected x of shape"):
        models.resize(ms.randn(2, 3, 4), (8, 8))
    with pytest.raises(ValueError, match="input_size must be"):
        models.summary(model, (3, 16, 16))


# ---------------------------------------------------------------------------- summary
def test_summary_counts_macs_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 8, 3, padding=2, dilation=2), nn.Conv2d(8, 4, 3, stride=2, groups=2),
                        nn.ConvTranspose2d(4, 4, 4, stride=2, padding=1))
    rows = models.profile(net, (2, 3, 16, 16))
    assert [r["type"] for r in rows] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "Conv2d", "ConvTranspose2d"]
    assert [r["output_shape"] for r in rows] == [(2, 8, 16, 16)] * 4 + [(2, 4, 7, 7), (2, 4, 14, 14)]
    assert [r["macs"] for r in rows] == [2 * 16 * 16 * 8 * 3 * 9, 0, 0,
                                         2 * 16 * 16 * 8 * 8 * 9,       # dilation adds nothing
                                         2 * 7 * 7 * 4 * 4 * 9,         # groups=2: C_in / groups = 4
                                         2 * 7 * 7 * 4 * 4 * 16]        # transposed: input pixels x C_in x C_out
    assert [r["params"] for r in rows] == [224, 16, 0, 584, 148, 260]
    text = models.summary(net, (2, 3, 16, 16))
    assert "Total params: 1,232" in text
    assert f"Total MACs: {sum(r['macs'] for r in rows):,}" in text
    assert "forward" not in net[0].__dict__ and net.training        # wrappers and mode restored


def test_summary_shows_output_stride_cost():
    def layer4_macs(os_):
        rows = models.profile(models.create("deeplabv3", 2, output_stride=os_), (1, 3, 64, 64))
        return sum(r["macs"] for r in rows if r["name"].startswith("backbone.layer4"))
    assert layer4_macs(8) == 16 * layer4_macs(32)
    model = models.create("fcn", 2, channels=8)
    text = models.summary(model, (1, 3, 32, 32))
    assert "backbone.layer1.0.conv1" in text and "MACs by part: backbone" in text
