"""The stand-in's ``cupy.testing`` (cupy/testing/_array.py, v13.6.0/v14.2.0): the array
assertions, which accept device and host arrays alike and compare on the host."""
import numpy as np

from ._array import ndarray


def _host(x):
    return x.get() if isinstance(x, ndarray) else x


def assert_allclose(actual, desired, rtol=1e-7, atol=0, err_msg="", verbose=True):
    np.testing.assert_allclose(_host(actual), _host(desired), rtol=rtol, atol=atol,
                               err_msg=err_msg, verbose=verbose)


def assert_array_almost_equal(x, y, decimal=6, err_msg="", verbose=True):
    np.testing.assert_array_almost_equal(_host(x), _host(y), decimal=decimal, err_msg=err_msg,
                                         verbose=verbose)


def assert_array_equal(x, y, err_msg="", verbose=True, strides_check=False):
    np.testing.assert_array_equal(_host(x), _host(y), err_msg=err_msg, verbose=verbose)
    if strides_check and _host(x).strides != _host(y).strides:
        raise AssertionError(f"strides differ: {x.strides} != {y.strides}")


def assert_array_less(x, y, err_msg="", verbose=True):
    np.testing.assert_array_less(_host(x), _host(y), err_msg=err_msg, verbose=verbose)
