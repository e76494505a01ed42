"""Vectorised particle physics of the multi-agent particle environments (MPE, Lowe et al. 2017).

One call advances ``B`` episodes of ``N`` disc-shaped agents at once, with no loop over agents or
episodes. Landmarks in confide's three MPE tasks neither move nor collide, so only agents take part.
Positions and velocities are float64 in world units; a step is ``dt`` = 0.1 time units.

One step, as in ``mpe2`` 1.1.1 (``_mpe_utils/core.py`` and ``simple_env.py``):

1. Action force: discrete action ``a`` in ``{0: none, 1: left (−x), 2: right (+x), 3: down (−y),
   4: up (+y)}`` gives a unit vector times the sensitivity 5.0 (mpe2's default when an agent has no
   ``accel``); no action noise.
2. Contact force between every pair of colliding agents ``i ≠ j``: with ``δ = x_i − x_j``,
   ``d = ‖δ‖`` and ``d_min = size_i + size_j``, agent ``i`` receives
   ``F · δ / d · k · log(1 + exp(−(d − d_min) / k))`` with ``F`` = 100 and margin ``k`` = 1e-3 (a softplus
   penetration: negligible a few margins apart, exactly 0 beyond ~0.75), and ``j`` the opposite.
3. Integration with damping 0.25 and mass 1, in one of two orders (:data:`IntegrationOrder`):

   * ``"position_first"`` (mpe2 1.1.1, the default): ``x ← x + v·dt``, then
     ``v ← (1 − damping)·v + (f / m)·dt``.
   * ``"velocity_first"`` (the original MPE of Lowe et al. and MAPPO's copy, on which DPO's ports are
     built): ``v ← (1 − damping)·v + (f / m)·dt``, then ``x ← x + v·dt``.

   If ``max_speed`` is set, a velocity faster than it is rescaled to it right after the velocity update
   (before the position update in ``velocity_first``). None of the three tasks sets one.

Choice: two agents at exactly the same point exert no contact force on each other (mpe2 divides 0 by 0
and produces NaN); this has probability zero under continuous resets.

``tests/test_env_mpe.py`` checks steps against ``mpe2``'s ``simple_spread`` and against hand-computed
free-particle, contact and speed-clipping steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

IntegrationOrder = Literal["position_first", "velocity_first"]
INTEGRATION_ORDERS: tuple[str, ...] = get_args(IntegrationOrder)

N_MOVES = 5
"""Discrete actions: 0 none, 1 left, 2 right, 3 down, 4 up (mpe2's order)."""

MOVE_DIRECTIONS = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
"""``[5, 2]`` float64 unit direction of each discrete action (read-only)."""
MOVE_DIRECTIONS.setflags(write=False)


@dataclass(frozen=True)
class ParticleParams:
    """Physical constants of one MPE world (defaults are mpe2's and the original MPE's).

    Attributes:
        size: agent radius in world units (simple spread 0.15; line and circle control 0.03).
        mass: agent mass.
        sensitivity: force magnitude of a discrete move (mpe2: 5.0 when ``accel`` is unset).
        dt: time step.
        damping: fraction of velocity lost per step.
        contact_force: stiffness ``F`` of the contact force.
        contact_margin: softplus margin ``k`` of the contact force.
        max_speed: speed limit, or None for none.
        order: integration order (module docstring).
    """

    size: float
    mass: float = 1.0
    sensitivity: float = 5.0
    dt: float = 0.1
    damping: float = 0.25
    contact_force: float = 100.0
    contact_margin: float = 1e-3
    max_speed: float | None = None
    order: IntegrationOrder = "position_first"

    def __post_init__(self) -> None:
        for name in ("size", "mass", "dt", "contact_margin"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.damping <= 1.0:
            raise ValueError(f"damping must lie in [0, 1], got {self.damping!r}")
        if self.max_speed is not None and not self.max_speed > 0:
            raise ValueError(f"max_speed must be > 0 or None, got {self.max_speed!r}")
        if self.order not in INTEGRATION_ORDERS:
            raise ValueError(
                f"unknown integration order {self.order!r}; known: {', '.join(INTEGRATION_ORDERS)}"
            )


def action_forces(actions: np.ndarray, sensitivity: float) -> np.ndarray:
    """``[B, N, 2]`` float64 force of each agent's discrete action ``[B, N]`` int in ``[0, 5)``."""
    return MOVE_DIRECTIONS[actions] * sensitivity


def pairwise_offsets(positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and distances between agents.

    Args:
        positions: ``[B, N, 2]`` float64.

    Returns:
        ``delta [B, N, N, 2]`` with ``delta[b, i, j] = x_i − x_j`` and ``dist [B, N, N]`` its norm
        (zero on the diagonal).
    """
    delta = positions[:, :, None, :] - positions[:, None, :, :]
    dist = np.sqrt(np.square(delta).sum(axis=-1))
    return delta, dist


def contact_forces(positions: np.ndarray, params: ParticleParams) -> np.ndarray:
    """``[B, N, 2]`` float64: the sum of the softplus contact forces each agent receives (step 2)."""
    delta, dist = pairwise_offsets(positions)
    k = params.contact_margin
    penetration = np.logaddexp(0.0, -(dist - 2.0 * params.size) / k) * k  # [B, N, N]
    n = positions.shape[1]
    apart = (dist > 0.0) & ~np.eye(n, dtype=bool)  # no self-force; coincident agents: no force
    scale = np.divide(params.contact_force * penetration, dist, out=np.zeros_like(dist), where=apart)
    return (scale[..., None] * delta).sum(axis=2)


def collision_counts(positions: np.ndarray, size: float) -> np.ndarray:
    """``[B, N]`` int64: how many other agents each agent overlaps (distance < ``2 · size``, strict).

    The collision test of mpe2's ``simple_spread`` and of DPO's ports (``is_collision``).
    """
    _, dist = pairwise_offsets(positions)
    n = positions.shape[1]
    hits = (dist < 2.0 * size) & ~np.eye(n, dtype=bool)
    return hits.sum(axis=2)


def integrate(
    positions: np.ndarray, velocities: np.ndarray, forces: np.ndarray, params: ParticleParams
) -> tuple[np.ndarray, np.ndarray]:
    """One integration step (step 3); returns new ``(positions, velocities)``, each ``[B, N, 2]`` float64."""
    if params.order == "position_first":
        positions = positions + velocities * params.dt
        velocities = _clip_speed(_damped(velocities, forces, params), params.max_speed)
    else:
        velocities = _clip_speed(_damped(velocities, forces, params), params.max_speed)
        positions = positions + velocities * params.dt
    return positions, velocities


def physics_step(
    positions: np.ndarray, velocities: np.ndarray, actions: np.ndarray, params: ParticleParams
) -> tuple[np.ndarray, np.ndarray]:
    """Advance ``B`` worlds by one MPE step (steps 1–3).

    Args:
        positions: ``[B, N, 2]`` float64 agent positions.
        velocities: ``[B, N, 2]`` float64 agent velocities.
        actions: ``[B, N]`` int discrete actions in ``[0, 5)`` (validated by the caller).
        params: the world's constants.

    Returns:
        New ``(positions, velocities)``, each ``[B, N, 2]`` float64.
    """
    forces = action_forces(actions, params.sensitivity) + contact_forces(positions, params)
    return integrate(positions, velocities, forces, params)


def _damped(velocities: np.ndarray, forces: np.ndarray, params: ParticleParams) -> np.ndarray:
    return velocities * (1.0 - params.damping) + (forces / params.mass) * params.dt


def _clip_speed(velocities: np.ndarray, max_speed: float | None) -> np.ndarray:
    if max_speed is None:
        return velocities
    speed = np.sqrt(np.square(velocities).sum(axis=-1, keepdims=True))
    factor = np.divide(max_speed, speed, out=np.ones_like(speed), where=speed > max_speed)
    return velocities * factor
