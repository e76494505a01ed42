"""GAE: vectorised equals the definition; a hand-computed chain."""

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from confide.core.gae import gae, gae_reference


def test_hand_computed_three_step_chain():
    # r = (1, 0, 2), V = (0.5, 0.2, 0.1), episode ends after the last step, γ = 0.9, λ = 0.5.
    r, v = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.5, 0.2, 0.1])
    nv = torch.tensor([0.2, 0.1, 7.0])  # the last next-value must be ignored
    ends = torch.tensor([False, False, True])
    d0, d1, d2 = 1 + 0.9 * 0.2 - 0.5, 0 + 0.9 * 0.1 - 0.2, 2 - 0.1
    a2 = d2
    a1 = d1 + 0.45 * a2
    a0 = d0 + 0.45 * a1
    torch.testing.assert_close(gae(r, v, nv, ends, 0.9, 0.5), torch.tensor([a0, a1, a2]))


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 12), st.integers(1, 3), st.floats(0.5, 1.0), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1)
)
def test_vectorised_equals_reference(T, B, gamma, lam, seed):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(T, B, 2)).astype(np.float32)
    v = rng.normal(size=(T, B, 2)).astype(np.float32)
    nv = rng.normal(size=(T, B, 2)).astype(np.float32)
    ends = rng.random((T, B)) < 0.2
    ends[-1] = True
    out = gae(
        torch.from_numpy(r),
        torch.from_numpy(v),
        torch.from_numpy(nv),
        torch.from_numpy(ends)[..., None],
        gamma,
        lam,
    )
    for b in range(B):
        for i in range(2):
            ref = gae_reference(r[:, b, i], v[:, b, i], nv[:, b, i], ends[:, b], gamma, lam)
            np.testing.assert_allclose(out[:, b, i].numpy(), ref, rtol=1e-4, atol=1e-4)
