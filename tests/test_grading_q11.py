"""Q11, SegFormer's efficient self-attention: the grader's reference agrees with a NumPy
computation written here, the untouched stub scores 0, correct answers score full marks at
several seeds, each named wrong answer loses the check built for it (with a message naming
the slip and the check's hint), and the library's own attention cannot be called to score."""
import dataclasses
import importlib.util
import math

import numpy as np
import pytest

from grading_answers import ANSWERS, EXERCISES, Q11_ANSWER, Q11_WRONG, grade, write
from minisegnet import grading
from minisegnet.grading.questions import q11_efficient_attention as q11
from minisegnet.models import segformer
from minisegnet.tensor import float64, no_grad, tensor

NAME = "q11_efficient_attention"
QUESTION = grading.QUESTIONS[NAME]
CHECKS = [c.name for c in QUESTION.checks]


# ---------------------------------------------------------------------- the oracle
def numpy_attention(state, x, hw, num_heads, sr_ratio):
    """Efficient self-attention in NumPy, from the formulas (float64), on tokens x (N, L, C)."""
    n, length, c = x.shape
    d = c // num_heads

    def linear(v, name):
        return v @ state[f"{name}.weight"].T + state[f"{name}.bias"]

    def heads(v):                                    # (N, S, C) -> (N, h, S, d)
        return v.reshape(n, v.shape[1], num_heads, d).transpose(0, 2, 1, 3)

    source = x
    if sr_ratio > 1:
        r, (hh, ww) = sr_ratio, hw
        grid = x.transpose(0, 2, 1).reshape(n, c, hh, ww)[:, :, :hh // r * r, :ww // r * r]
        patches = grid.reshape(n, c, hh // r, r, ww // r, r)
        reduced = np.einsum("ncirjs,ocrs->noij", patches, state["sr.weight"]) + state["sr.bias"][:, None, None]
        tokens = reduced.reshape(n, c, -1).transpose(0, 2, 1)
        mean = tokens.mean(-1, keepdims=True)
        var = ((tokens - mean) ** 2).mean(-1, keepdims=True)
        source = (tokens - mean) / np.sqrt(var + 1e-6) * state["norm.weight"] + state["norm.bias"]
    q = heads(linear(x, "q"))
    kv = linear(source, "kv")
    k, v = heads(kv[..., :c]), heads(kv[..., c:])
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = (weights @ v).transpose(0, 2, 1, 3).reshape(n, length, c)
    return linear(out, "proj")


@pytest.mark.parametrize("dim, num_heads, sr_ratio, hw", [(8, 1, 1, (4, 4)), (8, 2, 2, (5, 7)),
                                                          (12, 3, 4, (9, 6)), (16, 4, 1, (3, 3))])
def test_the_graders_reference_agrees_with_a_numpy_oracle(dim, num_heads, sr_ratio, hw):
    rng = np.random.default_rng(7)
    module = segformer.EfficientSelfAttention(dim, num_heads, sr_ratio).to("cpu", dtype=float64)
    state = {k: rng.normal(0, 0.5, v.shape) for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    x = rng.normal(size=(2, hw[0] * hw[1], dim))
    expected = numpy_attention(state, x, hw, num_heads, sr_ratio)
    with no_grad():
        xt = tensor(x, dtype=float64)
        library = module(xt, hw).numpy()
        rebuilt = q11.attention(module, xt, hw).numpy()     # what the slips are variations of
    np.testing.assert_allclose(library, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rebuilt, expected, rtol=1e-10, atol=1e-12)


# ---------------------------------------------------------------------- the stub
def load(path):
    spec = importlib.util.spec_from_file_location("q11_stub_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_registered_with_its_stub_and_answer_key():
    assert grading.find_question("q11") is QUESTION and grading.find_question("q11_mine.py") is QUESTION
    assert QUESTION.stub_path == EXERCISES / f"{NAME}.py"
    assert QUESTION.max_points == len(CHECKS) == 5
    assert "minisegnet.models.segformer:EfficientSelfAttention.forward" in QUESTION.answer_key
    assert "minisegnet.functional.transformer:scaled_dot_product_attention" in QUESTION.answer_key
    assert NAME in (EXERCISES / "README.md").read_text()


def test_the_stub_builds_the_librarys_layers():
    student = load(EXERCISES / f"{NAME}.py")
    for sr_ratio in (1, 2):
        mine = student.EfficientSelfAttention(8, 2, sr_ratio).state_dict()
        library = segformer.EfficientSelfAttention(8, 2, sr_ratio).state_dict()
        assert [(k, v.shape) for k, v in mine.items()] == [(k, v.shape) for k, v in library.items()]


def test_the_untouched_stub_scores_zero():
    result = grade(EXERCISES / f"{NAME}.py")
    assert result.points == 0 and result.max_points == 5
    assert result.message.startswith("not implemented yet")
    assert [c.name for c in result.failures] == CHECKS and result.notes == []


# ---------------------------------------------------------------------- answers
ALTERNATIVE = """
    scale = 1.0 / math.sqrt(d)

    def split(t):
        return t.reshape(n, t.shape[1], h, d).permute(0, 2, 1, 3)
    tokens = x
    if self.sr_ratio > 1:
        grid = x.transpose(1, 2).reshape(n, c, hw[0], hw[1])
        tokens = self.norm(self.sr(grid).reshape(n, c, -1).transpose(1, 2))
    k, v = split(self.kv(tokens)[:, :, :c]), split(self.kv(tokens)[:, :, c:])
    weights = F.softmax((split(self.q(x)) @ k.transpose(2, 3)) * scale, dim=-1)
    output = self.proj((weights @ v).permute(0, 2, 1, 3).reshape(n, length, c))
"""


@pytest.mark.parametrize("answer", [Q11_ANSWER, ALTERNATIVE], ids=["tokens_to_map", "by hand"])
def test_correct_answers_score_full_marks_at_several_seeds(tmp_path, answer):
    path = write(tmp_path, NAME, answer)
    for seed in (3, "another passphrase"):
        result = grade(path, seed=seed)
        assert result.complete and result.points == 5, result.message
        assert result.notes == []


@pytest.mark.parametrize("what", list(Q11_WRONG))
def test_a_named_wrong_answer_loses_its_check_with_the_hint(tmp_path, what):
    answer, failed_check, words = Q11_WRONG[what]
    result = grade(write(tmp_path, NAME, answer))
    assert result.points < result.max_points
    assert result.failed == failed_check, result.message
    before = CHECKS[:CHECKS.index(failed_check)]
    assert [c.name for c in result.checks if c.passed][:len(before)] == before    # the earlier ones pass
    assert words in result.message
    hint = QUESTION.checks[CHECKS.index(failed_check)].hint
    assert result.message.endswith("Hint: " + hint)


def test_a_detached_output_loses_only_the_gradient_check(tmp_path):
    answer, failed_check, _ = Q11_WRONG["output cut off from the graph"]
    result = grade(write(tmp_path, NAME, answer))
    assert [c.name for c in result.failures] == [failed_check] and result.points == 4


# ---------------------------------------------------------------------- the answer key is off
_HEADS = """
    q = self.q(x).reshape(n, length, h, d).transpose(1, 2)
    if self.sr_ratio > 1:
        x = self.norm(map_to_tokens(self.sr(tokens_to_map(x, hw))))
    kv = self.kv(x)
    k = kv[:, :, :c].reshape(n, -1, h, d).transpose(1, 2)
    v = kv[:, :, c:].reshape(n, -1, h, d).transpose(1, 2)
"""
CHEATS = {
    "the library's forward": """
        from minisegnet.models import segformer
        self.__class__ = segformer.EfficientSelfAttention      # the same layers, the library's forward
        output = self(x, hw)
    """,
    "F.scaled_dot_product_attention": _HEADS + """
    out = F.scaled_dot_product_attention(q, k, v)
    output = self.proj(out.transpose(1, 2).reshape(n, length, c))
    """,
    "the library's attention weights": _HEADS + """
    from minisegnet.functional import transformer
    out = transformer.attention_weights(q, k) @ v
    output = self.proj(out.transpose(1, 2).reshape(n, length, c))
    """,
}


@pytest.mark.parametrize("what", list(CHEATS))
def test_the_librarys_attention_cannot_be_called_to_score(tmp_path, what):
    path = write(tmp_path, NAME, CHEATS[what])
    result = grade(path)
    assert result.points == 0, (what, result.message)
    assert "is the answer key for q11_efficient_attention and is off while grading" in result.message
    # the same file with nothing switched off scores full marks: the switch is what stops it
    unguarded = dataclasses.replace(QUESTION, answer_key=())
    assert grading.grade_file(path, unguarded).complete, what


def test_command_line_reports_the_stub(capsys):
    assert grading.main([str(EXERCISES / f"{NAME}.py")]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:2] == [NAME, "0/5"] and "not implemented" in out
