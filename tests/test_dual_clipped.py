"""The AS/SS objective (Eq. 13–16) on hand-made numbers."""

import math

import torch

from confide.core.dual_clipped import DualClippedConfig, PeerInbox, dual_clipped_loss
from confide.core.ppo import clipped_surrogate


def _logp(rows):
    return torch.tensor(rows, dtype=torch.float32).log()


def _empty_inbox(n, m, a):
    z = torch.zeros(n, n, m, a)
    f = torch.zeros(n, n, m, dtype=torch.bool)
    return PeerInbox(z, f, z, f)


def test_without_messages_the_objective_is_independent_ppo():
    n, m, a = 2, 3, 2
    gen = torch.Generator().manual_seed(0)
    logp = torch.log_softmax(torch.randn(n, n, m, a, generator=gen), -1)
    old = torch.log_softmax(torch.randn(n, n, m, a, generator=gen), -1)
    actions = torch.randint(0, a, (m, n), generator=gen)
    adv = torch.randn(m, n, generator=gen)
    loss, _ = dual_clipped_loss(
        logp, old, actions, adv, torch.ones(n), _empty_inbox(n, m, a), DualClippedConfig(rho=5.0), 0.2
    )
    for i in range(n):
        own = logp[i, i].gather(-1, actions[:, i : i + 1]).squeeze(-1)
        own_old = old[i, i].gather(-1, actions[:, i : i + 1]).squeeze(-1)
        expected = -clipped_surrogate((own - own_old).exp(), adv[:, i], 0.2).mean()
        torch.testing.assert_close(loss[i], expected)


def test_two_agents_one_sample_by_hand():
    # Agent 0's heads: own π^00 = (0.6, 0.4), anticipation π^01 = (0.7, 0.3); old: π^00 = (0.5, 0.5), π^01 = (0.5, 0.5).
    # Agent 0 received from agent 1: π^11_old = (0.2, 0.8) and π^10_old = (0.9, 0.1). Joint action a = (0, 0), Â_0 = 2.
    logp = _logp([[[[0.6, 0.4]], [[0.7, 0.3]]], [[[0.5, 0.5]], [[0.5, 0.5]]]])
    old = _logp([[[[0.5, 0.5]], [[0.5, 0.5]]], [[[0.5, 0.5]], [[0.5, 0.5]]]])
    actions = torch.tensor([[0, 0]])
    adv = torch.tensor([[2.0, 0.0]])
    kappa = torch.tensor([3.0, 1.0])
    policy = torch.zeros(2, 2, 1, 2)
    head = torch.zeros(2, 2, 1, 2)
    policy[0, 1, 0] = torch.tensor([0.2, 0.8])
    head[0, 1, 0] = torch.tensor([0.9, 0.1])
    has = torch.zeros(2, 2, 1, dtype=torch.bool)
    has[0, 1] = True
    inbox = PeerInbox(policy, has, head, has)
    rho, eps = 0.5, 0.2
    xi_i = 0.6 / 0.5  # 1.2, inside the clip range
    # X^{01}: (0.7 / 0.2) * 2 >= 2 → in; ‖π^01 − π^11‖² = 0.5² + 0.5² = 0.5
    # X^{00}: (0.6 / 0.9) * 2 >= 2 → out
    for denominator, xi_n in (("own_old", 0.7 / 0.5), ("peer_old", 0.7 / 0.2)):
        loss, _ = dual_clipped_loss(
            logp, old, actions, adv, kappa, inbox, DualClippedConfig(rho, denominator), eps
        )
        expected = -(min(xi_i * xi_n * 2, min(max(xi_i, 1 - eps), 1 + eps) * xi_n * 2)) + 3.0 * rho * 0.5
        assert math.isclose(float(loss[0]), expected, rel_tol=1e-5), (denominator, float(loss[0]), expected)


def test_own_penalty_applies_when_own_policy_moves_away_from_what_the_peer_anticipates():
    # Now π^10_old = (0.3, 0.7): (0.6 / 0.3) * 2 >= 2 → X^{00} holds; ‖π^00 − π^10‖² = 0.3² + 0.3² = 0.18.
    logp = _logp([[[[0.6, 0.4]], [[0.2, 0.8]]], [[[0.5, 0.5]], [[0.5, 0.5]]]])
    old = logp.clone()
    actions = torch.tensor([[0, 0]])
    adv = torch.tensor([[2.0, 0.0]])
    policy = torch.zeros(2, 2, 1, 2)
    head = torch.zeros(2, 2, 1, 2)
    policy[0, 1, 0] = torch.tensor([0.2, 0.8])  # equals π^01: no X^{01} penalty (distance 0)
    head[0, 1, 0] = torch.tensor([0.3, 0.7])
    has = torch.zeros(2, 2, 1, dtype=torch.bool)
    has[0, 1] = True
    loss, stats = dual_clipped_loss(
        logp,
        old,
        actions,
        adv,
        torch.tensor([1.0, 1.0]),
        PeerInbox(policy, has, head, has),
        DualClippedConfig(1.0),
        0.2,
    )
    assert math.isclose(float(stats["penalty"][0]), 0.18, rel_tol=1e-5)
    assert math.isclose(float(loss[0]), -2.0 + 0.18, rel_tol=1e-5)
