"""Which neighbour mask holds at each update: the one object a trainer asks "who talks to whom now?".

A :class:`TopologyConfig` names the kind of neighbourhood; a :class:`NeighbourSchedule` turns it into
masks update by update. Masks follow :mod:`confide.topologies.graphs` (``mask[..., i, j]`` True means
j is in N_i; symmetric; False diagonal) and come in two shapes:

* ``[N, N]`` for the fixed graphs (``complete``, ``ring``, ``line``, ``grid``, ``edges``) and for
  ``random_partners`` (one draw per update, shared by every sample of the batch). It broadcasts over
  the batch.
* ``[M, N, N]`` for ``radius``, one mask per sample of the update batch (decision 10), from the
  positions ``[M, N, D]`` of the batch's states flattened over time x episodes.

``period`` composes with every kind (decision 13: each protocol alone or combined): at a gap update
(``update % period != 0``) the mask is all False, in the same shape as at a talking update, and the
algorithms drop their sharing terms (decision 9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import networkx as nx
import numpy as np

from confide.topologies.dynamic import communication_round, radius_mask, random_partners
from confide.topologies.graphs import adjacency_mask, complete, from_edges, grid, line, ring

TopologyKind = Literal["complete", "ring", "line", "grid", "edges", "radius", "random_partners"]
TOPOLOGY_KINDS: tuple[str, ...] = get_args(TopologyKind)
STATIC_KINDS: tuple[str, ...] = ("complete", "ring", "line", "grid", "edges")


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


@dataclass(frozen=True)
class TopologyConfig:
    """Who may talk to whom, and how often. Validated at construction; errors are one-line ValueErrors.

    ``edges`` and ``grid_shape`` belong to their kind only: setting them for another kind is an error,
    since it would be silently ignored. Limits that depend on the number of agents (edge ids in range,
    ``rows * cols == N``, ``partners <= N - 1``) are checked by :class:`NeighbourSchedule`.
    """

    kind: TopologyKind = "complete"
    """complete | ring | line | grid | edges (fixed graphs), radius (per-sample, by distance),
    random_partners (redrawn every update)."""
    radius: float = 0.1
    """Neighbourhood radius in the environment's normalised units (kind radius; C. Predation: 0.1)."""
    partners: int = 2
    """Partners each agent draws per update (kind random_partners; SS App. A.4 default 2, AS uses 1)."""
    period: int = 1
    """Agents talk at updates where update % period == 0 (1: every update; 2: the papers' half rate)."""
    edges: tuple[tuple[int, int], ...] = ()
    """Undirected links (i, j) for kind edges, e.g. Exchange's neighbourhoods."""
    grid_shape: tuple[int, int] | None = None
    """(rows, cols) for kind grid; agent r * cols + c sits at cell (r, c)."""

    def __post_init__(self) -> None:
        if self.kind not in TOPOLOGY_KINDS:
            raise ValueError(f"kind must be one of {TOPOLOGY_KINDS}, got {self.kind!r}")
        real = int | float | np.integer | np.floating
        radius_ok = isinstance(self.radius, real) and not isinstance(self.radius, bool)
        if not radius_ok or not math.isfinite(self.radius) or self.radius <= 0:
            raise ValueError(f"radius must be a finite number > 0, got {self.radius!r}")
        if not _is_int(self.partners) or self.partners < 1:
            raise ValueError(f"partners must be an integer >= 1, got {self.partners!r}")
        if not _is_int(self.period) or self.period < 1:
            raise ValueError(f"period must be an integer >= 1, got {self.period!r}")
        # Accept lists (e.g. from a JSON config) and store hashable tuples.
        object.__setattr__(self, "edges", self._checked_edges(self.edges))
        if self.kind == "edges" and not self.edges:
            raise ValueError("kind 'edges' needs at least one edge in edges")
        if self.kind != "edges" and self.edges:
            raise ValueError(f"edges are only used by kind 'edges', not {self.kind!r}")
        if self.grid_shape is not None:
            shape = tuple(self.grid_shape)
            if len(shape) != 2 or not all(_is_int(s) and s >= 1 for s in shape):
                raise ValueError(
                    f"grid_shape must be (rows, cols) with integers >= 1, got {self.grid_shape!r}"
                )
            object.__setattr__(self, "grid_shape", (int(shape[0]), int(shape[1])))
        if self.kind == "grid" and self.grid_shape is None:
            raise ValueError("kind 'grid' needs grid_shape=(rows, cols)")
        if self.kind != "grid" and self.grid_shape is not None:
            raise ValueError(f"grid_shape is only used by kind 'grid', not {self.kind!r}")

    @staticmethod
    def _checked_edges(edges: Any) -> tuple[tuple[int, int], ...]:
        if not isinstance(edges, tuple | list):
            raise ValueError(f"edges must be a tuple of (i, j) pairs, got {type(edges).__name__}")
        checked = []
        for edge in edges:
            pair = tuple(edge) if isinstance(edge, tuple | list) else ()
            if len(pair) != 2 or not all(_is_int(x) and x >= 0 for x in pair):
                raise ValueError(f"each edge must be a pair of integer agent ids >= 0, got {edge!r}")
            if pair[0] == pair[1]:
                raise ValueError(f"edge {edge!r} is a self-loop; an agent is never its own neighbour")
            checked.append((int(pair[0]), int(pair[1])))
        return tuple(checked)


def _read_only(mask: np.ndarray) -> np.ndarray:
    mask.flags.writeable = False
    return mask


class NeighbourSchedule:
    """The neighbour mask of each update for ``n_agents`` agents under one :class:`TopologyConfig`.

    Args:
        config: the topology.
        n_agents: N, the number of agents.
        rng: the generator random partners are drawn from. The schedule owns it (its state is what
            :meth:`state_dict` saves), so pass a generator of its own derived from the run seed, not
            one shared with rollouts. Fixed graphs and ``radius`` never draw from it.

    Random partners are drawn once per talking update, the first time that update is asked for; asking
    again for the same update returns the same mask (so the K exchanges of Algorithm 1 within one
    update share it), gap updates draw nothing, and asking for an earlier talking update than the last
    one drawn raises ValueError because its draw is gone. Returned ``[N, N]`` masks are read-only.
    """

    def __init__(self, config: TopologyConfig, n_agents: int, rng: np.random.Generator) -> None:
        if not _is_int(n_agents) or n_agents < 1:
            raise ValueError(f"n_agents must be an integer >= 1, got {n_agents!r}")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        self.config = config
        self.n_agents = int(n_agents)
        self.rng = rng
        n = self.n_agents
        self._static_mask: np.ndarray | None = None
        if config.kind in STATIC_KINDS:
            self._static_mask = _read_only(adjacency_mask(self._graph(), n))
        elif config.kind == "random_partners" and not config.partners <= n - 1:
            raise ValueError(
                f"partners={config.partners} needs at least {config.partners + 1} agents, got {n}"
            )
        self._silent = _read_only(np.zeros((n, n), dtype=bool))
        self._drawn_update: int | None = None
        self._drawn_mask: np.ndarray | None = None

    def _graph(self) -> nx.Graph:
        kind, n = self.config.kind, self.n_agents
        if kind == "complete":
            return complete(n)
        if kind == "ring":
            return ring(n)
        if kind == "line":
            return line(n)
        if kind == "grid":
            rows, cols = self.config.grid_shape
            if rows * cols != n:
                raise ValueError(f"grid_shape {rows}x{cols} has {rows * cols} cells for {n} agents")
            return grid(rows, cols)
        return from_edges(n, self.config.edges)

    @property
    def is_static(self) -> bool:
        """True when the graph is fixed (same at every update and sample); gaps are :meth:`talks`' job."""
        return self.config.kind in STATIC_KINDS

    @property
    def needs_positions(self) -> bool:
        """True when :meth:`mask_for_update` needs the batch positions (kind ``radius``)."""
        return self.config.kind == "radius"

    def talks(self, update: int) -> bool:
        """Whether agents exchange messages at ``update`` (0-based): ``update % period == 0``."""
        return communication_round(update, self.config.period)

    def mask_for_update(self, update: int, positions: np.ndarray | None = None) -> np.ndarray:
        """The neighbour mask for ``update`` (0-based).

        Args:
            update: the update index.
            positions: ``[M, N, D]`` normalised positions of the batch's states (time x episode
                flattened), required for ``radius`` and ignored by every other kind.

        Returns:
            ``[M, N, N]`` bool for ``radius``, ``[N, N]`` bool otherwise; all False at gap updates.
        """
        talking = self.talks(update)
        if self.config.kind == "radius":
            if positions is None:
                raise ValueError("kind 'radius' needs positions [M, N, D] for the update batch")
            x = np.asarray(positions)
            if x.ndim != 3 or x.shape[1] != self.n_agents:
                raise ValueError(f"positions must have shape [M, {self.n_agents}, D], got {x.shape}")
            if not talking:
                return np.zeros((x.shape[0], self.n_agents, self.n_agents), dtype=bool)
            return radius_mask(x, self.config.radius)
        if not talking:
            return self._silent
        if self._static_mask is not None:
            return self._static_mask
        return self._partners_for(int(update))

    def _partners_for(self, update: int) -> np.ndarray:
        if self._drawn_update is not None:
            if update == self._drawn_update:
                return self._drawn_mask
            if update < self._drawn_update:
                raise ValueError(
                    f"update {update} comes before the last drawn update {self._drawn_update}; "
                    "restore an earlier state_dict to replay it"
                )
        mask = random_partners(self.n_agents, self.config.partners, self.rng)
        self._drawn_update, self._drawn_mask = update, _read_only(mask)
        return self._drawn_mask

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot: the rng's ``bit_generator.state`` and the last random draw."""
        return {
            "kind": self.config.kind,
            "n_agents": self.n_agents,
            "rng": self.rng.bit_generator.state,
            "drawn_update": self._drawn_update,
            "drawn_mask": None if self._drawn_mask is None else self._drawn_mask.tolist(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (sets this schedule's rng state in place) to resume a run."""
        if state.get("kind") != self.config.kind or state.get("n_agents") != self.n_agents:
            raise ValueError(
                f"state is for kind {state.get('kind')!r} with {state.get('n_agents')} agents, "
                f"this schedule is {self.config.kind!r} with {self.n_agents}"
            )
        self.rng.bit_generator.state = state["rng"]
        drawn_mask = state["drawn_mask"]
        self._drawn_update = state["drawn_update"]
        self._drawn_mask = None if drawn_mask is None else _read_only(np.array(drawn_mask, dtype=bool))
