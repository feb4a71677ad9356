"""Raw array kernels: the heavy loops of the spatial ops, on NumPy or CuPy arrays.

No Tensors and no autograd here: each kernel takes arrays and returns arrays, and
:mod:`minisegnet.functional` wraps them into differentiable ops. Import the module you
need (nothing is imported here, so a kernel's cost is paid only by its users):

* :mod:`.threads`       – the one thread pool and thread count every CPU kernel shares
  (``set_num_threads``), and the BLAS limit
* :mod:`.conv`          – conv2d forward and its two backward products (grad input, grad
  weight), which also make conv_transpose2d; :mod:`.conv_plan` is their geometry (bands,
  taps over padding), :mod:`.conv_reference` the short textbook conv2d the tests check them with,
  :mod:`.depthwise` the direct depthwise convolution (one pass per tap) it uses on large maps
* :mod:`.pooling`       – max / average / adaptive pooling windows
  (:mod:`.cuda_pooling`: its CuPy ``RawKernel``; :mod:`.cuda_sources`: every CUDA
  kernel's source beside its NumPy twin)
* :mod:`.interpolation` – interpolation weights and indices for ``interpolate``
* :mod:`.blocks`        – how the element-wise and normalising kernels cut arrays into
  cache-sized blocks and share them among the threads
* :mod:`.normalization` – batch norm, layer norm, softmax and cross-entropy, block by block
* :mod:`.gelu`          – the exact GELU and its slope (erf, and a one-formula Phi for float32)
* :mod:`.relu`          – ReLU and per-channel sums in the layouts NumPy runs fastest
"""
