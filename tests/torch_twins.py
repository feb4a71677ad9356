"""PyTorch twins of minisegnet's models, written once for the tests and the benchmarks.

Each class rebuilds a minisegnet module layer by layer in PyTorch with the same structure
and state-dict keys (MMSegmentation / torchvision names), so weights copy over by key:
``tests/test_models.py`` compares outputs and gradients with them, and
``benchmarks/bench_train.py`` times a training step of :func:`segmentor_twin` against
minisegnet's. Importable without PyTorch (then nothing but ``torch = None`` is defined).
"""
import numpy as np

try:
    import torch
except ImportError:          # the twins need their reference library
    torch = None

def copy_to_torch(ms_module, t_module):
    """Load minisegnet's state dict into its PyTorch twin by key; the key sets must agree
    (``num_batches_tracked`` aside), which checks that the names follow MMSegmentation's."""
    state = ms_module.state_dict()
    t_keys = {k for k in t_module.state_dict() if not k.endswith("num_batches_tracked")}
    ms_keys = {k for k in state if not k.endswith("num_batches_tracked")}
    if ms_keys != t_keys:
        raise ValueError(f"the PyTorch twin does not match: only minisegnet {sorted(ms_keys - t_keys)[:5]}, "
                         f"only torch {sorted(t_keys - ms_keys)[:5]}")
    t_module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items() if k in t_keys},
                             strict=False)
    return t_module


def randomize(module, seed):
    """Give every float entry of the state dict random, well-scaled values (BN stats too)."""
    rng = np.random.default_rng(seed)
    new = {}
    for key, v in module.state_dict().items():
        if v.dtype.kind != "f":
            new[key] = v
        elif key.endswith("running_var"):
            new[key] = rng.uniform(0.5, 2.0, v.shape)
        elif key.endswith("running_mean"):
            new[key] = rng.normal(0, 0.2, v.shape)
        elif v.ndim == 1 and key.endswith("weight"):
            new[key] = rng.uniform(0.5, 1.5, v.shape)
        elif v.ndim == 1:
            new[key] = rng.normal(0, 0.2, v.shape)
        else:
            fan_in = int(np.prod(v.shape[1:]))
            new[key] = rng.normal(0, 1.5 / np.sqrt(fan_in), v.shape)
    module.load_state_dict(new)


# documented stage dilations per output stride (backbones.py's table)
STAGE_DILATIONS = {32: (1, 1, 1, 1), 16: (1, 1, 1, 2), 8: (1, 1, 2, 4)}

if torch is not None:
    tnn, TF = torch.nn, torch.nn.functional

    def t_resize(x, size, align_corners=False):
        size = tuple(size)
        if tuple(x.shape[2:]) == size:
            return x
        return TF.interpolate(x, size=size, mode="bilinear", align_corners=align_corners)

    class TConvModule(tnn.Module):
        def __init__(self, cin, cout, k, stride=1, padding=0, dilation=1, groups=1):
            super().__init__()
            self.conv = tnn.Conv2d(cin, cout, k, stride, padding, dilation, groups, bias=False)
            self.bn = tnn.BatchNorm2d(cout)
            self.activate = tnn.ReLU()

        def forward(self, x):
            return self.activate(self.bn(self.conv(x)))

    class TDSConvModule(tnn.Module):
        def __init__(self, cin, cout, k, padding=0, dilation=1):
            super().__init__()
            self.depthwise_conv = TConvModule(cin, cin, k, padding=padding, dilation=dilation, groups=cin)
            self.pointwise_conv = TConvModule(cin, cout, 1)

        def forward(self, x):
            return self.pointwise_conv(self.depthwise_conv(x))

    class THead(tnn.Module):
        """Decode-head base: (dropout, when dropout_ratio > 0) then the 1x1 classifier."""

        def __init__(self, cin, channels, num_classes, in_index=-1, align_corners=False, dropout_ratio=0):
            super().__init__()
            self.in_index, self.align_corners = in_index, align_corners
            self.dropout = tnn.Dropout2d(dropout_ratio) if dropout_ratio > 0 else None
            self.conv_seg = tnn.Conv2d(channels, num_classes, 1)

        def cls_seg(self, feat):
            return self.conv_seg(feat if self.dropout is None else self.dropout(feat))

    class TFCNHead(THead):
        def __init__(self, cin, channels, num_classes, num_convs=2, k=3, concat_input=True, dilation=1, **kw):
            super().__init__(cin, channels, num_classes, **kw)
            self.concat_input = concat_input
            self.convs = tnn.Sequential(*[TConvModule(cin if i == 0 else channels, channels, k,
                                                      padding=k // 2 * dilation, dilation=dilation)
                                          for i in range(num_convs)])
            if concat_input:
                self.conv_cat = TConvModule(cin + channels, channels, k, padding=k // 2)

        def forward(self, inputs):
            x = inputs[self.in_index]
            out = self.convs(x)
            if self.concat_input:
                out = self.conv_cat(torch.cat([x, out], dim=1))
            return self.cls_seg(out)

    class TPyramidPooling(tnn.Module):
        def __init__(self, cin, sizes=(1, 2, 3, 6)):
            super().__init__()
            self.avgpools = tnn.ModuleList([tnn.AdaptiveAvgPool2d(s) for s in sizes])
            self.convs = tnn.ModuleList([TConvModule(cin, cin // 4, 1) for _ in sizes])

        def forward(self, x):
            feats = [x]
            for pool, conv in zip(self.avgpools, self.convs):
                feats.append(TF.interpolate(conv(pool(x)), x.shape[2:], mode="bilinear", align_corners=False))
            return torch.cat(feats, dim=1)

    class TPSPHead(THead):
        def __init__(self, cin, channels, num_classes, sizes=(1, 2, 3, 6), **kw):
            super().__init__(cin, channels, num_classes, **kw)
            self.psp_modules = TPyramidPooling(cin, sizes)
            self.bottleneck = TConvModule(cin + len(sizes) * (cin // 4), channels, 3, padding=1)

        def forward(self, inputs):
            return self.cls_seg(self.bottleneck(self.psp_modules(inputs[self.in_index])))

    class TASPPModule(tnn.ModuleList):
        def __init__(self, dilations, cin, channels, separable=False):
            super().__init__()
            for d in dilations:
                if d == 1:
                    self.append(TConvModule(cin, channels, 1))
                elif separable:
                    self.append(TDSConvModule(cin, channels, 3, padding=d, dilation=d))
                else:
                    self.append(TConvModule(cin, channels, 3, padding=d, dilation=d))

        def forward(self, x):
            return [m(x) for m in self]

    class TASPPHead(THead):
        def __init__(self, cin, channels, num_classes, dilations, separable=False, **kw):
            super().__init__(cin, channels, num_classes, **kw)
            self.image_pool = tnn.Sequential(tnn.AdaptiveAvgPool2d(1), TConvModule(cin, channels, 1))
            self.aspp_modules = TASPPModule(dilations, cin, channels, separable)
            self.bottleneck = TConvModule((len(dilations) + 1) * channels, channels, 3, padding=1)

        def aspp(self, x):
            outs = [TF.interpolate(self.image_pool(x), x.shape[2:], mode="bilinear",
                                   align_corners=self.align_corners)]
            outs.extend(self.aspp_modules(x))
            return self.bottleneck(torch.cat(outs, dim=1))

        def forward(self, inputs):
            return self.cls_seg(self.aspp(inputs[self.in_index]))

    class TDSASPPHead(TASPPHead):
        def __init__(self, cin, channels, num_classes, dilations, c1_in, c1_channels, **kw):
            super().__init__(cin, channels, num_classes, dilations, separable=True, **kw)
            self.c1_bottleneck = TConvModule(c1_in, c1_channels, 1)
            self.sep_bottleneck = tnn.Sequential(TDSConvModule(channels + c1_channels, channels, 3, padding=1),
                                                 TDSConvModule(channels, channels, 3, padding=1))

        def forward(self, inputs):
            out = self.aspp(inputs[self.in_index])
            c1 = self.c1_bottleneck(inputs[0])
            out = torch.cat([t_resize(out, c1.shape[2:], self.align_corners), c1], dim=1)
            return self.cls_seg(self.sep_bottleneck(out))

    class TFCN8sHead(THead):
        def __init__(self, cins, channels, num_classes):
            super().__init__(cins[2], channels, num_classes)
            self.fc = tnn.Sequential(TConvModule(cins[2], channels, 3, padding=1), TConvModule(channels, channels, 1))
            self.score_pool4 = tnn.Conv2d(cins[1], num_classes, 1)
            self.score_pool3 = tnn.Conv2d(cins[0], num_classes, 1)
            self.upscore2 = tnn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
            self.upscore_pool4 = tnn.ConvTranspose2d(num_classes, num_classes, 4, 2, 1, bias=False)
            self.upscore8 = tnn.ConvTranspose2d(num_classes, num_classes, 16, 8, 4, bias=False)

        @staticmethod
        def align(x, ref):
            h, w = ref.shape[2:]
            if x.shape[2] >= h and x.shape[3] >= w:
                return x[:, :, :h, :w]                     # the paper's crop
            return t_resize(x, (h, w))

        def forward(self, inputs):
            p3, p4, p5 = inputs[-3:]
            s = self.cls_seg(self.fc(p5))
            s = self.score_pool4(p4) + self.align(self.upscore2(s), p4)
            s = self.score_pool3(p3) + self.align(self.upscore_pool4(s), p3)
            return self.upscore8(s)

    class TBasicBlock(tnn.Module):
        def __init__(self, cin, planes, stride, dilation, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, planes, 3, stride, dilation, dilation, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU()
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, dilation, dilation, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + identity)

    class TResNet(tnn.Module):
        """torchvision's ResNet layout with DeepLab dilation (every block of a stage dilated)."""

        def __init__(self, layers, base, output_stride=32, fc_classes=None):
            super().__init__()
            dil = STAGE_DILATIONS[output_stride]
            self.conv1 = tnn.Conv2d(3, base, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(base)
            self.relu = tnn.ReLU()
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            cin = base
            for i, n in enumerate(layers):
                planes, stride = base * 2 ** i, (1 if i == 0 or dil[i] > 1 else 2)
                down = None
                if stride != 1 or cin != planes:
                    down = tnn.Sequential(tnn.Conv2d(cin, planes, 1, stride, bias=False), tnn.BatchNorm2d(planes))
                blocks = [TBasicBlock(cin, planes, stride, dil[i], down)]
                blocks += [TBasicBlock(planes, planes, 1, dil[i]) for _ in range(n - 1)]
                setattr(self, f"layer{i + 1}", tnn.Sequential(*blocks))
                cin = planes
            if fc_classes:
                self.avgpool = tnn.AdaptiveAvgPool2d(1)
                self.fc = tnn.Linear(cin, fc_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            outs = []
            for i in range(4):
                x = getattr(self, f"layer{i + 1}")(x)
                outs.append(x)
            return outs


    def segmentor_twin(model, inplace_relu=True):
        """The PyTorch twin of a minisegnet ``EncoderDecoder`` with a ResNet backbone and an FCN,
        PSP or ASPP decode head, with the model's weights copied by state-dict key.

        Its ``forward(img)`` returns logits resized to the image (bilinear); ``loss(img, target)``
        is their cross-entropy (ignore index 255). ``inplace_relu``: ReLUs overwrite their input,
        as in torchvision and MMSegmentation (less memory; gradients unchanged).
        """
        src, head = model.backbone, model.decode_head
        kind = type(head).__name__
        kw = dict(in_index=head.in_index, align_corners=head.align_corners, dropout_ratio=head.dropout_ratio)
        if kind == "FCNHead":
            t_head = TFCNHead(head.in_channels, head.channels, head.num_classes, num_convs=head.num_convs,
                              k=head.kernel_size, concat_input=head.concat_input, **kw)
        elif kind == "PSPHead":
            t_head = TPSPHead(head.in_channels, head.channels, head.num_classes, head.psp_modules.sizes, **kw)
        elif kind == "ASPPHead":
            t_head = TASPPHead(head.in_channels, head.channels, head.num_classes, head.dilations, **kw)
        else:
            raise ValueError(f"no PyTorch twin for {kind}")

        class Segmentor(tnn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = TResNet(src.layers, src.conv1.weight.shape[0], src.output_stride)
                self.decode_head = t_head

            def forward(self, img):
                return t_resize(self.decode_head(self.backbone(img)), img.shape[2:], model.align_corners)

            def loss(self, img, target):
                return TF.cross_entropy(self(img), target, ignore_index=255)

        twin = Segmentor()
        if inplace_relu:
            for m in twin.modules():
                if isinstance(m, tnn.ReLU):
                    m.inplace = True
        return copy_to_torch(model, twin)
