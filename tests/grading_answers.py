"""Answers to the exercises as a student would write them, and the helper that puts one into
a copy of the stub's marked region; shared by the tests/test_grading*.py files."""
import pathlib
import textwrap

from minisegnet import grading

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXERCISES = ROOT / "exercises"
N_QUESTIONS = 10

# ---------------------------------------------------------------------- correct answers
SYLLABUS_Q1 = """
aspp_outs = [
    resize(
        self.image_pool(x),
        size=x.size()[2:],
        mode='bilinear',
        align_corners=self.align_corners)
]
aspp_outs.extend(self.aspp_modules(x))
aspp_outs = ms.cat(aspp_outs, dim=1)
output = self.bottleneck(aspp_outs)
"""

SYLLABUS_Q2 = """
intersect = (a & b).sum()
union = (a | b).sum()
IoU = intersect / union
"""

ANSWERS = {
    "q1_aspp_forward": SYLLABUS_Q1,
    "q2_iou": SYLLABUS_Q2,
    "q3_dice": """
        Dice = 2 * np.logical_and(a, b).sum() / (np.count_nonzero(a) + np.count_nonzero(b))
    """,
    "q4_conv_output_size": """
        out_size, receptive_field, jump = in_size, 1, 1
        for k, s, p, d in layers:
            out_size = (out_size + 2 * p - d * (k - 1) - 1) // s + 1
            receptive_field += d * (k - 1) * jump
            jump *= s
    """,
    "q5_conv2d_im2col": """
        n, c, h, w = x.shape
        o, _, kh, kw = weight.shape
        p, s, d = padding, stride, dilation
        xpad = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        oh = (h + 2 * p - d * (kh - 1) - 1) // s + 1
        ow = (w + 2 * p - d * (kw - 1) - 1) // s + 1
        cols = np.empty((n, c, kh, kw, oh, ow))
        for u in range(kh):
            for v in range(kw):
                cols[:, :, u, v] = xpad[:, :, u * d:u * d + s * (oh - 1) + 1:s,
                                        v * d:v * d + s * (ow - 1) + 1:s]
        out = weight.reshape(o, -1) @ cols.reshape(n, c * kh * kw, oh * ow)
        out = out.reshape(n, o, oh, ow)
        if bias is not None:
            out = out + bias[None, :, None, None]
    """,
    "q6_bilinear": """
        def axis_matrix(n_in, n_out):
            i = np.arange(n_out)
            if align_corners:
                src = i * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
            else:
                src = np.maximum((i + 0.5) * (n_in / n_out) - 0.5, 0.0)
            i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
            i1 = np.minimum(i0 + 1, n_in - 1)
            t = src - i0
            m = np.zeros((n_out, n_in))
            np.add.at(m, (i, i0), 1 - t)
            np.add.at(m, (i, i1), t)
            return m
        rows, cols = axis_matrix(x.shape[2], size[0]), axis_matrix(x.shape[3], size[1])
        out = np.einsum("oh,nchw,pw->ncop", rows, x, cols)
    """,
    "q7_adaptive_bins": """
        bins = [(i * in_size // out_size, -(-(i + 1) * in_size // out_size))
                for i in range(out_size)]
    """,
    "q8_pyramid_pooling": """
        branches = [x]
        for pool, conv in zip(self.avgpools, self.convs):
            branches.append(resize(conv(pool(x)), size, mode='bilinear',
                                   align_corners=self.align_corners))
        output = ms.cat(branches, dim=1)
    """,
    "q9_cross_entropy": """
        z = logits - logits.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        counted = target != ignore_index
        safe = np.where(counted, target, 0)
        picked = np.take_along_axis(log_p, safe[:, None], axis=1)[:, 0]
        loss = -picked[counted].mean()
    """,
    "q10_transposed_conv": """
        n, c_in, h, w = x.shape
        _, c_out, kh, kw = weight.shape
        s = stride
        full = np.zeros((n, c_out, (h - 1) * s + kh, (w - 1) * s + kw))
        for u in range(kh):
            for v in range(kw):
                full[:, :, u:u + s * (h - 1) + 1:s, v:v + s * (w - 1) + 1:s] += \\
                    np.einsum("nchw,co->nohw", x, weight[:, :, u, v])
        out = full[:, :, padding:full.shape[2] - padding, padding:full.shape[3] - padding]
    """,
    "q12_bilinear_backward": """
        def axis_matrix(n_in, n_out):
            i = np.arange(n_out)
            src = np.maximum((i + 0.5) * (n_in / n_out) - 0.5, 0.0)
            i0 = np.minimum(np.floor(src).astype(int), n_in - 1)
            i1 = np.minimum(i0 + 1, n_in - 1)
            m = np.zeros((n_out, n_in))
            np.add.at(m, (i, i0), 1 - (src - i0))
            np.add.at(m, (i, i1), src - i0)
            return m
        rows = axis_matrix(in_size[0], grad_out.shape[2])
        cols = axis_matrix(in_size[1], grad_out.shape[3])
        grad_in = np.einsum("oh,ncop,pw->nchw", rows, grad_out, cols)
    """,
}


def fill(name, answer):
    """The stub's text with the marked region replaced by ``answer`` (indented to match)."""
    lines = (EXERCISES / f"{name}.py").read_text().splitlines()
    begin = next(i for i, line in enumerate(lines) if line.strip() == grading.BEGIN_MARK)
    end = next(i for i, line in enumerate(lines) if line.strip() == grading.END_MARK)
    indent = lines[begin][:len(lines[begin]) - len(lines[begin].lstrip())]
    body = textwrap.indent(textwrap.dedent(answer).strip("\n"), indent).splitlines()
    return "\n".join(lines[:begin + 1] + body + lines[end:]) + "\n"


def write(tmp_path, name, answer):
    path = tmp_path / f"{name}.py"
    path.write_text(fill(name, answer))
    return path


def grade(path, **kwargs):
    return grading.grade_file(path, **kwargs)




# ---------------------------------------------------------------------- Q11 (SegFormer attention)
Q11_ANSWER = """
    q = self.q(x).reshape(n, length, h, d).transpose(1, 2)               # (N, h, L, d)
    if self.sr_ratio > 1:
        x = self.norm(map_to_tokens(self.sr(tokens_to_map(x, hw))))      # (N, L', C)
    kv = self.kv(x)
    k = kv[:, :, :c].reshape(n, -1, h, d).transpose(1, 2)                # (N, h, L', d)
    v = kv[:, :, c:].reshape(n, -1, h, d).transpose(1, 2)
    attn = (q @ k.transpose(-2, -1)) / math.sqrt(d)                      # (N, h, L, L')
    attn = attn.softmax(-1)
    out = (attn @ v).transpose(1, 2).reshape(n, length, c)
    output = self.proj(out)
"""
ANSWERS["q11_efficient_attention"] = Q11_ANSWER


def _q11(*replacements):
    text = Q11_ANSWER
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new)
    return text


# name -> (answer, the first check it fails, words of that check's message)
Q11_WRONG = {
    "no 1/sqrt(d) scale": (_q11((" / math.sqrt(d)", "")),
                           "one head, no spatial reduction (sr_ratio=1), 4x4 grid", "1/sqrt(d) scale"),
    "scale 1/sqrt(C)": (_q11(("math.sqrt(d)", "math.sqrt(c)")),
                        "two and four heads (d = C / num_heads)", "1/sqrt(C)"),
    "softmax over the queries": (_q11(("attn.softmax(-1)", "attn.softmax(-2)")),
                                 "one head, no spatial reduction (sr_ratio=1), 4x4 grid", "over the queries"),
    "keys from all tokens": (_q11(("    if self.sr_ratio > 1:\n        x = self.norm(map_to_tokens("
                                   "self.sr(tokens_to_map(x, hw))))      # (N, L', C)\n", "")),
                             "spatial reduction sr_ratio=2, one head, 4x4 grid", "without the spatial reduction"),
    "no LayerNorm after the reduction": (_q11(("self.norm(map_to_tokens(self.sr(tokens_to_map(x, hw))))",
                                               "map_to_tokens(self.sr(tokens_to_map(x, hw)))")),
                                         "spatial reduction sr_ratio=2, one head, 4x4 grid", "without the LayerNorm"),
    "reduction even when sr_ratio=1": (_q11(("    if self.sr_ratio > 1:\n        x = ", "    x = ")),
                                       "one head, no spatial reduction (sr_ratio=1), 4x4 grid",
                                       "your code raised AttributeError"),
    "heads split by a reshape alone": (_q11(("self.q(x).reshape(n, length, h, d).transpose(1, 2)",
                                             "self.q(x).reshape(n, h, length, d)"),
                                            ("kv[:, :, :c].reshape(n, -1, h, d).transpose(1, 2)",
                                             "kv[:, :, :c].reshape(n, h, -1, d)"),
                                            ("kv[:, :, c:].reshape(n, -1, h, d).transpose(1, 2)",
                                             "kv[:, :, c:].reshape(n, h, -1, d)"),
                                            ("(attn @ v).transpose(1, 2).reshape", "(attn @ v).reshape")),
                                       "two and four heads (d = C / num_heads)", "without the transpose"),
    "heads merged by a reshape alone": (_q11(("(attn @ v).transpose(1, 2).reshape", "(attn @ v).reshape")),
                                        "two and four heads (d = C / num_heads)", "heads merged by a reshape"),
    "no output projection": (_q11(("output = self.proj(out)", "output = out")),
                             "one head, no spatial reduction (sr_ratio=1), 4x4 grid", "without the output projection"),
    "tokens reshaped straight to a map": (_q11(("tokens_to_map(x, hw)", "x.reshape(n, c, hw[0], hw[1])")),
                                          "spatial reduction sr_ratio=2, one head, 4x4 grid",
                                          "reshaped straight to (N, C, H, W)"),
    "H and W swapped": (_q11(("tokens_to_map(x, hw)", "tokens_to_map(x, (hw[1], hw[0]))")),
                        "odd, non-square grids (5x7 with sr_ratio=2, 9x6 with sr_ratio=4)", "H and W swapped"),
    "output cut off from the graph": (_q11(("output = self.proj(out)", "output = self.proj(out).detach()")),
                                      "float64 gradients reach x and every layer (sr_ratio=2, two heads, 5x6 grid)",
                                      "not connected"),
}
