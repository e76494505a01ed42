"""Fixed communication graphs: who may send to whom, the same at every update and every state.

Every constructor returns an undirected ``networkx.Graph`` on the nodes ``0 .. N-1`` (added in that
order), built from a networkx generator. Links are symmetric: an edge ``{i, j}`` means agent ``i``
receives from and sends to agent ``j``. No graph has self-loops.

The algorithms do not walk graphs; they consume the boolean mask of :func:`adjacency_mask`:
``mask[i, j]`` is True when agent ``j`` is a neighbour of agent ``i`` (``j`` in N_i of AS/SS Eq. 16).
"""

from __future__ import annotations

from collections.abc import Iterable

import networkx as nx
import numpy as np


def _check_count(name: str, value: int) -> int:
    """Return ``value`` if it is an int >= 1, else raise ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _canonical(n: int, edges: Iterable[tuple[int, int]]) -> nx.Graph:
    """A fresh graph with nodes ``0 .. n-1`` added in order and the given edges (self-loops dropped)."""
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    graph.add_edges_from((int(u), int(v)) for u, v in edges if u != v)
    return graph


def complete(n: int) -> nx.Graph:
    """Every agent talks to every other agent (the AS/SS default for Cleanup and Harvest)."""
    n = _check_count("n", n)
    return _canonical(n, nx.complete_graph(n).edges())


def ring(n: int) -> nx.Graph:
    """Agent ``i`` talks to ``i-1`` and ``i+1`` modulo ``n``.

    For ``n <= 2`` the cycle degenerates: ``ring(2)`` is the single link 0-1 and ``ring(1)`` has no
    link (networkx's one-node cycle would be a self-loop, which a neighbourhood never contains).
    """
    n = _check_count("n", n)
    return _canonical(n, nx.cycle_graph(n).edges())


def line(n: int) -> nx.Graph:
    """The path 0-1-...-(n-1). C. Navigation talks along ``line(3)``, the paper's 1-2-3 (decision 4)."""
    n = _check_count("n", n)
    return _canonical(n, nx.path_graph(n).edges())


def grid(rows: int, cols: int) -> nx.Graph:
    """A ``rows x cols`` lattice with 4-neighbour links; cell ``(r, c)`` is agent ``r * cols + c``."""
    rows = _check_count("rows", rows)
    cols = _check_count("cols", cols)
    lattice = nx.grid_2d_graph(rows, cols)
    links = ((r0 * cols + c0, r1 * cols + c1) for (r0, c0), (r1, c1) in lattice.edges())
    return _canonical(rows * cols, links)


def from_edges(n: int, edges: Iterable[tuple[int, int]]) -> nx.Graph:
    """A graph on ``0 .. n-1`` with the given undirected links (e.g. Exchange's dashed rectangles).

    Each edge is a pair of distinct integer node ids in ``[0, n)``; ``(i, j)`` and ``(j, i)`` are the
    same link and repeats are harmless. Raises ValueError on a malformed pair, an id out of range or a
    self-loop.
    """
    n = _check_count("n", n)
    checked: list[tuple[int, int]] = []
    for edge in edges:
        pair = tuple(edge) if isinstance(edge, tuple | list | np.ndarray) else ()
        if len(pair) != 2 or not all(_is_int(x) for x in pair):
            raise ValueError(f"an edge must be a pair of integer node ids, got {edge!r}")
        u, v = int(pair[0]), int(pair[1])
        if not (0 <= u < n and 0 <= v < n):
            raise ValueError(f"edge {edge!r} has a node id outside [0, {n})")
        if u == v:
            raise ValueError(f"edge {edge!r} is a self-loop; an agent is never its own neighbour")
        checked.append((u, v))
    return _canonical(n, checked)


def _is_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def adjacency_mask(graph: nx.Graph, n: int) -> np.ndarray:
    """The ``[N, N]`` bool neighbour mask of an undirected graph on nodes ``0 .. n-1``.

    ``mask[i, j]`` is True iff ``{i, j}`` is an edge; the mask is symmetric and its diagonal False.
    Nodes of ``0 .. n-1`` missing from the graph are isolated agents. Raises ValueError for a directed
    graph, a node that is not an integer in ``[0, n)``, or a self-loop.
    """
    n = _check_count("n", n)
    if graph.is_directed():
        raise ValueError("links are symmetric: pass an undirected graph, not a directed one")
    for node in graph.nodes():
        if not _is_int(node) or not 0 <= int(node) < n:
            raise ValueError(f"graph node {node!r} is not an agent id in [0, {n})")
    if nx.number_of_selfloops(graph) > 0:
        raise ValueError("graph has a self-loop; an agent is never its own neighbour")
    pairs = np.array([(int(u), int(v)) for u, v in graph.edges()], dtype=np.intp).reshape(-1, 2)
    mask = np.zeros((n, n), dtype=bool)
    mask[pairs[:, 0], pairs[:, 1]] = True
    mask[pairs[:, 1], pairs[:, 0]] = True
    return mask
