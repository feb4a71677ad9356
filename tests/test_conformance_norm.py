"""batch_norm on (N, C, L) input (a 1-d signal per channel, e.g. a token sequence) against PyTorch."""
import numpy as np
import pytest

import minisegnet as ms
import minisegnet.functional as F
from conftest import requires_torch, torch


@requires_torch
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 7), (2, 5, 1), (3, 2)])
def test_batch_norm_ncl_matches_torch(shape, training, device, parity):
    rng = np.random.default_rng(1)
    c = shape[1]
    mean, var = rng.standard_normal(c), rng.random(c) + 0.5
    ours_stats = (ms.tensor(mean.copy(), device=device), ms.tensor(var.copy(), device=device))
    ref_stats = (torch.tensor(mean.copy()), torch.tensor(var.copy()))
    parity(lambda x, w, b: F.batch_norm(x, *ours_stats, w, b, training, 0.3, 1e-5),
           lambda x, w, b: torch.nn.functional.batch_norm(x, *ref_stats, w, b, training, 0.3, 1e-5),
           [rng.standard_normal(shape) * 3 + 1, rng.random(c) + 0.5, rng.standard_normal(c)], device=device)
    for ours, ref in zip(ours_stats, ref_stats):          # running statistics updated alike
        np.testing.assert_allclose(ours.numpy(), ref.numpy(), rtol=1e-10)
