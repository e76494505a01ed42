"""Per-agent privacy accounting for the DP-noise channel layer (``confide.channels.dp_noise``).

Each agent's data is protected separately, so each agent has its own ledger. One *release* is one
noised array in one message of that agent (a message to three receivers is three releases, each with
fresh noise; two noised arrays in one message are two releases). Counting arrays separately is exact,
not loose: k Gaussian releases with multiplier σ compose in RDP to one with σ/√k, which is what a
single release of the concatenated arrays (L2 sensitivity √k·Δ) would cost; for Laplace both give
k·Δ/b.

- Gaussian: Opacus' ``RDPAccountant`` with sample rate 1 (no subsampling: every release uses the
  agent's whole data) and one step per release; (ε, δ) at the caller's δ.
- Laplace: pure ε-DP, basic composition: ε = releases · Δ / b, δ = 0.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Protocol


class PrivacyAccountant(Protocol):
    """Counts releases per agent and converts them to (ε, δ)."""

    def step(self, agent: int, releases: int = 1) -> None:
        """Record ``releases`` more noised releases of ``agent``'s data."""
        ...

    def epsilon(self, agent: int, delta: float) -> float:
        """ε spent by ``agent`` so far (at ``delta`` where the mechanism needs one)."""
        ...

    def report(self, n_agents: int, delta: float) -> dict[int, tuple[float, float]]:
        """``{agent: (ε, δ)}`` for agents ``0..n_agents-1`` (zeros for an agent that released nothing)."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class GaussianAccountant:
    """Opacus RDP accounting of the Gaussian mechanism with noise std = ``noise_multiplier`` · Δ."""

    def __init__(self, noise_multiplier: float) -> None:
        if noise_multiplier <= 0:
            raise ValueError(f"noise_multiplier must be > 0, got {noise_multiplier}")
        self.noise_multiplier = float(noise_multiplier)
        self.releases: Counter[int] = Counter()

    def step(self, agent: int, releases: int = 1) -> None:
        self.releases[int(agent)] += int(releases)

    def epsilon(self, agent: int, delta: float) -> float:
        steps = self.releases.get(int(agent), 0)
        if steps == 0:
            return 0.0
        return float(self._opacus(steps).get_epsilon(delta=delta))

    def report(self, n_agents: int, delta: float) -> dict[int, tuple[float, float]]:
        out = {}
        for agent in range(n_agents):
            spent = self.releases.get(agent, 0) > 0
            out[agent] = (self.epsilon(agent, delta), float(delta) if spent else 0.0)
        return out

    def _opacus(self, steps: int) -> Any:
        """An Opacus accountant holding this agent's history.

        Opacus is imported here, not at module level, because it costs ~2.5 s of imports and most
        runs never add noise. ``step`` is called once per release (Opacus merges equal steps).
        """
        from opacus.accountants import RDPAccountant

        accountant = RDPAccountant()
        for _ in range(steps):
            accountant.step(noise_multiplier=self.noise_multiplier, sample_rate=1.0)
        return accountant

    def state_dict(self) -> dict[str, Any]:
        return {"noise_multiplier": self.noise_multiplier, "releases": dict(self.releases)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.noise_multiplier = float(state["noise_multiplier"])
        self.releases = Counter({int(k): int(v) for k, v in state["releases"].items()})


class LaplaceAccountant:
    """Pure ε-DP of the Laplace mechanism with L1 sensitivity Δ and scale b: ε = releases · Δ / b."""

    def __init__(self, sensitivity: float, scale: float) -> None:
        if sensitivity <= 0 or scale <= 0:
            raise ValueError(f"sensitivity and scale must be > 0, got {sensitivity}, {scale}")
        self.sensitivity = float(sensitivity)
        self.scale = float(scale)
        self.releases: Counter[int] = Counter()

    def step(self, agent: int, releases: int = 1) -> None:
        self.releases[int(agent)] += int(releases)

    def epsilon(self, agent: int, delta: float = 0.0) -> float:
        return self.releases.get(int(agent), 0) * self.sensitivity / self.scale

    def report(self, n_agents: int, delta: float = 0.0) -> dict[int, tuple[float, float]]:
        return {agent: (self.epsilon(agent), 0.0) for agent in range(n_agents)}

    def state_dict(self) -> dict[str, Any]:
        return {"sensitivity": self.sensitivity, "scale": self.scale, "releases": dict(self.releases)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sensitivity = float(state["sensitivity"])
        self.scale = float(state["scale"])
        self.releases = Counter({int(k): int(v) for k, v in state["releases"].items()})
