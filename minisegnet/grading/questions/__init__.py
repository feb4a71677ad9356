"""The built-in questions, one module each (``q1_aspp_forward.py`` ... ``q12_bilinear_backward.py``).

Each module defines ``QUESTION`` (a :class:`~minisegnet.grading.question.Question`): its
entry points, its checks with points and hints, the references the checks compute with
the library, and the library code that is the question's answer key.
"""
import pathlib

EXERCISES = pathlib.Path(__file__).resolve().parents[3] / "exercises"

MODULES = ("q1_aspp_forward", "q2_iou", "q3_dice", "q4_conv_output_size", "q5_conv2d_im2col",
           "q6_bilinear", "q7_adaptive_bins", "q8_pyramid_pooling", "q9_cross_entropy",
           "q10_transposed_conv", "q11_efficient_attention", "q12_bilinear_backward")


def stub(name):
    """Where the handed-out exercise file of question ``name`` lives in the repository."""
    return EXERCISES / f"{name}.py"
