"""confide.topologies: who may send to whom, as boolean neighbour masks.

``mask[..., i, j]`` True means agent j is a neighbour of agent i (i receives from and sends to j);
masks are symmetric with a False diagonal. Fixed graphs give ``[N, N]`` (it broadcasts over the
batch); state-dependent neighbourhoods give one mask per sample, ``[M, N, N]``.

* :mod:`~confide.topologies.graphs`: networkx constructors and :func:`adjacency_mask`.
* :mod:`~confide.topologies.dynamic`: :func:`radius_mask`, :func:`random_partners`,
  :func:`communication_round`.
* :mod:`~confide.topologies.schedule`: :class:`TopologyConfig` and :class:`NeighbourSchedule`, the
  mask of each update.
"""

from confide.topologies.dynamic import RADIUS_ATOL, communication_round, radius_mask, random_partners
from confide.topologies.graphs import adjacency_mask, complete, from_edges, grid, line, ring
from confide.topologies.schedule import (
    STATIC_KINDS,
    TOPOLOGY_KINDS,
    NeighbourSchedule,
    TopologyConfig,
    TopologyKind,
)

__all__ = [
    "RADIUS_ATOL",
    "STATIC_KINDS",
    "TOPOLOGY_KINDS",
    "NeighbourSchedule",
    "TopologyConfig",
    "TopologyKind",
    "adjacency_mask",
    "communication_round",
    "complete",
    "from_edges",
    "grid",
    "line",
    "radius_mask",
    "random_partners",
    "ring",
]
