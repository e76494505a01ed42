"""confide.topologies: exact masks of small graphs, radius boundaries, random partners, schedules."""

from __future__ import annotations

import json
import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from confide.topologies import (
    NeighbourSchedule,
    TopologyConfig,
    adjacency_mask,
    communication_round,
    complete,
    from_edges,
    grid,
    line,
    radius_mask,
    random_partners,
    ring,
)

T, F = True, False


def mask_of(rows: list[list[bool]]) -> np.ndarray:
    return np.array(rows, dtype=bool)


# ---------------------------------------------------------------- fixed graphs: exact masks by hand


def test_ring_4_exact():
    expected = mask_of([[F, T, F, T], [T, F, T, F], [F, T, F, T], [T, F, T, F]])
    np.testing.assert_array_equal(adjacency_mask(ring(4), 4), expected)


def test_line_3_is_the_papers_1_2_3():
    expected = mask_of([[F, T, F], [T, F, T], [F, T, F]])
    np.testing.assert_array_equal(adjacency_mask(line(3), 3), expected)


def test_grid_2x3_row_major():
    # 0 1 2
    # 3 4 5
    expected = mask_of(
        [
            [F, T, F, T, F, F],
            [T, F, T, F, T, F],
            [F, T, F, F, F, T],
            [T, F, F, F, T, F],
            [F, T, F, T, F, T],
            [F, F, T, F, T, F],
        ]
    )
    np.testing.assert_array_equal(adjacency_mask(grid(2, 3), 6), expected)
    assert list(grid(2, 3).nodes()) == list(range(6))


def test_complete_3_exact():
    np.testing.assert_array_equal(adjacency_mask(complete(3), 3), ~np.eye(3, dtype=bool))


def test_from_edges_exact_with_reversed_and_repeated_pairs():
    graph = from_edges(4, [(0, 2), (3, 1), (2, 0)])
    expected = mask_of([[F, F, T, F], [F, F, F, T], [T, F, F, F], [F, T, F, F]])
    np.testing.assert_array_equal(adjacency_mask(graph, 4), expected)
    assert graph.number_of_nodes() == 4


def test_degenerate_rings_have_no_self_loops():
    np.testing.assert_array_equal(adjacency_mask(ring(2), 2), mask_of([[F, T], [T, F]]))
    np.testing.assert_array_equal(adjacency_mask(ring(1), 1), mask_of([[F]]))


@pytest.mark.parametrize(
    ("edges", "match"),
    [
        ([(0, 4)], "outside"),
        ([(-1, 0)], "outside"),
        ([(1, 1)], "self-loop"),
        ([(0, 1, 2)], "pair"),
        ([(0.0, 1)], "pair"),
        ([3], "pair"),
    ],
)
def test_from_edges_rejects_bad_edges(edges, match):
    with pytest.raises(ValueError, match=match):
        from_edges(4, edges)


def test_adjacency_mask_rejects_bad_graphs():
    with pytest.raises(ValueError, match="undirected"):
        adjacency_mask(nx.DiGraph([(0, 1)]), 2)
    with pytest.raises(ValueError, match="not an agent id"):
        adjacency_mask(nx.Graph([(0, 5)]), 3)
    with pytest.raises(ValueError, match="self-loop"):
        adjacency_mask(nx.Graph([(0, 0)]), 2)
    with pytest.raises(ValueError, match="n must be"):
        complete(0)


@given(st.integers(1, 12), st.integers(1, 5), st.integers(1, 5))
def test_fixed_graph_masks_are_symmetric_with_empty_diagonal(n, rows, cols):
    for graph, size in [(complete(n), n), (ring(n), n), (line(n), n), (grid(rows, cols), rows * cols)]:
        mask = adjacency_mask(graph, size)
        assert mask.shape == (size, size) and mask.dtype == bool
        np.testing.assert_array_equal(mask, mask.T)
        assert not mask.diagonal().any()


# ---------------------------------------------------------------- radius


def test_radius_hand_positions_1d():
    positions = np.array([[[0.0], [0.1], [0.25]]])  # [M=1, N=3, D=1]
    expected = mask_of([[F, T, F], [T, F, F], [F, F, F]])
    np.testing.assert_array_equal(radius_mask(positions, 0.1), expected[None])


@pytest.mark.parametrize(
    "pair",
    [
        (0.2, 0.3),  # 0.3 - 0.2 = 0.09999999999999998
        (0.3, 0.4),  # 0.4 - 0.3 = 0.10000000000000003: beyond 0.1 in float64
        (0.6, 0.7),
        (0.0, 0.1),
    ],
)
def test_radius_boundary_is_inclusive_despite_float_rounding(pair):
    positions = np.array(pair).reshape(2, 1)
    assert radius_mask(positions, 0.1)[0, 1]
    assert radius_mask(positions, 0.3 - 0.2)[0, 1]


def test_radius_boundary_without_slack_is_the_bare_float_comparison():
    assert 0.4 - 0.3 > 0.1
    assert not radius_mask(np.array([[0.3], [0.4]]), 0.1, atol=0.0)[0, 1]


def test_radius_boundary_from_float32_environment_positions():
    # C. Predation: x in [0, 30] as float32, normalised by 30; 3 apart is exactly 0.1 on paper.
    for a, b in [(9, 12), (0, 3), (27, 30), (14, 17)]:
        positions = (np.array([[a], [b]], dtype=np.float32) / np.float32(30)).astype(np.float32)
        assert radius_mask(positions, 0.1)[0, 1], (a, b)
    assert not radius_mask(np.array([[0.0], [0.1 + 1e-4]]), 0.1)[0, 1]
    assert not radius_mask(np.array([[9.0], [12.01]], dtype=np.float32) / 30, 0.1)[0, 1]


def test_radius_2d_euclidean():
    positions = np.array([[0.0, 0.0], [0.06, 0.08], [0.08, 0.061], [1.0, 1.0]])  # distances 0.1, 0.1006
    mask = radius_mask(positions, 0.1)
    assert mask[0, 1] and mask[1, 0]
    assert not mask[0, 2]
    assert mask[1, 2]  # |(0.02, -0.019)| = 0.0276
    assert not mask[3].any()


def test_radius_keeps_leading_batch_axes():
    positions = np.random.default_rng(0).random((3, 5, 4, 2))
    assert radius_mask(positions, 0.3).shape == (3, 5, 4, 4)


@pytest.mark.parametrize(
    ("positions", "radius", "match"),
    [
        (np.zeros(3), 0.1, "shape"),
        (np.zeros((2, 0)), 0.1, "shape"),
        (np.array([[0.0], [np.nan]]), 0.1, "NaN"),
        (np.zeros((2, 1)), 0.0, "radius"),
        (np.zeros((2, 1)), math.inf, "radius"),
    ],
)
def test_radius_rejects_bad_input(positions, radius, match):
    with pytest.raises(ValueError, match=match):
        radius_mask(positions, radius)


def slow_radius_mask(positions: np.ndarray, radius: float, atol: float) -> np.ndarray:
    m, n, _ = positions.shape
    mask = np.zeros((m, n, n), dtype=bool)
    for s in range(m):
        for i in range(n):
            for j in range(n):
                if i != j:
                    mask[s, i, j] = math.dist(positions[s, i], positions[s, j]) <= radius + atol
    return mask


positions_strategy = st.tuples(st.integers(1, 4), st.integers(1, 7), st.integers(1, 3)).flatmap(
    lambda shape: hnp.arrays(np.float64, shape, elements=st.floats(0.0, 1.0, width=32))
)


@settings(deadline=None)
@given(positions_strategy, st.floats(0.01, 1.5))
def test_radius_mask_symmetric_empty_diagonal_and_matches_loop_reference(positions, radius):
    mask = radius_mask(positions, radius)
    assert mask.shape == positions.shape[:1] + positions.shape[1:2] * 2 and mask.dtype == bool
    np.testing.assert_array_equal(mask, np.swapaxes(mask, -1, -2))
    assert not np.diagonal(mask, axis1=-2, axis2=-1).any()
    np.testing.assert_array_equal(mask, slow_radius_mask(positions, radius, 1e-6))


# ---------------------------------------------------------------- random partners


@settings(deadline=None)
@given(
    st.integers(2, 12).flatmap(lambda n: st.tuples(st.just(n), st.integers(1, n - 1))), st.integers(0, 2**32)
)
def test_random_partners_properties(n_m, seed):
    n, m = n_m
    mask = random_partners(n, m, np.random.default_rng(seed))
    assert mask.shape == (n, n) and mask.dtype == bool
    np.testing.assert_array_equal(mask, mask.T)
    assert not mask.diagonal().any()
    assert (mask.sum(axis=1) >= m).all()


def test_random_partners_with_all_others_is_complete():
    np.testing.assert_array_equal(random_partners(5, 4, np.random.default_rng(0)), ~np.eye(5, dtype=bool))


def test_random_partners_reproducible_and_seed_dependent():
    draws = {
        seed: [random_partners(10, 2, rng) for rng in [np.random.default_rng(seed)] for _ in range(3)]
        for seed in (1, 2)
    }
    again = [random_partners(10, 2, rng) for rng in [np.random.default_rng(1)] for _ in range(3)]
    for a, b in zip(draws[1], again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(draws[1], draws[2], strict=True))


@pytest.mark.parametrize(("n", "m"), [(6, 1), (8, 2)])
def test_random_partners_link_frequency_is_uniform(n, m):
    # P(link i-j) = 1 - (1 - m/(n-1))^2 for every pair; each pair's count is Binomial(draws, p).
    draws = 4000
    rng = np.random.default_rng(12345)
    counts = sum(random_partners(n, m, rng).astype(np.int64) for _ in range(draws))
    p = 1 - (1 - m / (n - 1)) ** 2
    sd = math.sqrt(draws * p * (1 - p))
    off_diagonal = counts[~np.eye(n, dtype=bool)]
    assert np.abs(off_diagonal - draws * p).max() < 6 * sd  # per pair: miss chance ~2e-9
    assert abs(off_diagonal.mean() - draws * p) < 6 * sd / math.sqrt(n * (n - 1) / 2)


@pytest.mark.parametrize(("n", "m"), [(4, 0), (4, 4), (1, 1), (4, True)])
def test_random_partners_rejects_bad_counts(n, m):
    with pytest.raises(ValueError):
        random_partners(n, m, np.random.default_rng(0))


# ---------------------------------------------------------------- communication rounds


def test_communication_round_period():
    assert [communication_round(u, 1) for u in range(4)] == [T, T, T, T]
    assert [communication_round(u, 2) for u in range(6)] == [T, F, T, F, T, F]
    assert [communication_round(u, 3) for u in range(6)] == [T, F, F, T, F, F]
    with pytest.raises(ValueError, match="period"):
        communication_round(0, 0)
    with pytest.raises(ValueError, match="update"):
        communication_round(-1, 2)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "star"}, "kind"),
        ({"radius": 0.0}, "radius"),
        ({"radius": -1.0}, "radius"),
        ({"radius": math.nan}, "radius"),
        ({"partners": 0}, "partners"),
        ({"partners": 1.5}, "partners"),
        ({"period": 0}, "period"),
        ({"period": True}, "period"),
        ({"kind": "edges"}, "at least one edge"),
        ({"kind": "edges", "edges": ((0, 0),)}, "self-loop"),
        ({"kind": "edges", "edges": ((0, -1),)}, "pair"),
        ({"kind": "edges", "edges": ((0, 1, 2),)}, "pair"),
        ({"kind": "ring", "edges": ((0, 1),)}, "only used by kind 'edges'"),
        ({"kind": "grid"}, "grid_shape"),
        ({"kind": "grid", "grid_shape": (0, 3)}, "grid_shape"),
        ({"kind": "grid", "grid_shape": (2,)}, "grid_shape"),
        ({"kind": "line", "grid_shape": (1, 3)}, "only used by kind 'grid'"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TopologyConfig(**kwargs)


def test_config_normalises_lists_to_hashable_tuples():
    config = TopologyConfig(kind="edges", edges=[[0, 1], [1, 2]])
    assert config.edges == ((0, 1), (1, 2))
    assert TopologyConfig(kind="grid", grid_shape=[2, 3]).grid_shape == (2, 3)
    hash(config)


@pytest.mark.parametrize(
    ("config", "n", "match"),
    [
        (TopologyConfig(kind="grid", grid_shape=(2, 3)), 5, "cells"),
        (TopologyConfig(kind="edges", edges=((0, 3),)), 3, "outside"),
        (TopologyConfig(kind="random_partners", partners=3), 3, "partners"),
    ],
)
def test_schedule_checks_limits_that_depend_on_n(config, n, match):
    with pytest.raises(ValueError, match=match):
        NeighbourSchedule(config, n, np.random.default_rng(0))


# ---------------------------------------------------------------- schedule


def test_static_schedule_masks_and_gaps():
    schedule = NeighbourSchedule(TopologyConfig(kind="line", period=2), 3, np.random.default_rng(0))
    assert schedule.is_static and not schedule.needs_positions
    talk = schedule.mask_for_update(0, None)
    np.testing.assert_array_equal(talk, mask_of([[F, T, F], [T, F, T], [F, T, F]]))
    gap = schedule.mask_for_update(1, None)
    assert gap.shape == (3, 3) and not gap.any()
    assert [schedule.talks(u) for u in range(4)] == [T, F, T, F]
    with pytest.raises(ValueError):
        talk[0, 1] = False  # shared masks are read-only


def test_static_schedule_never_draws():
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    schedule = NeighbourSchedule(TopologyConfig(kind="ring"), 5, rng)
    for update in range(5):
        schedule.mask_for_update(update, np.zeros((2, 5, 1)))  # positions are ignored
    assert rng.bit_generator.state == before


def test_radius_schedule_per_sample_masks_and_gaps():
    schedule = NeighbourSchedule(TopologyConfig(kind="radius", period=2), 3, np.random.default_rng(0))
    assert not schedule.is_static and schedule.needs_positions
    positions = np.array([[[0.0], [0.05], [0.5]], [[0.0], [0.5], [0.55]]])  # [M=2, N=3, D=1]
    mask = schedule.mask_for_update(0, positions)
    expected = np.stack(
        [mask_of([[F, T, F], [T, F, F], [F, F, F]]), mask_of([[F, F, F], [F, F, T], [F, T, F]])]
    )
    np.testing.assert_array_equal(mask, expected)
    gap = schedule.mask_for_update(1, positions)
    assert gap.shape == (2, 3, 3) and not gap.any()
    with pytest.raises(ValueError, match="needs positions"):
        schedule.mask_for_update(0, None)
    with pytest.raises(ValueError, match="shape"):
        schedule.mask_for_update(0, np.zeros((2, 4, 1)))


def test_random_partner_schedule_draws_once_per_talking_update():
    config = TopologyConfig(kind="random_partners", partners=1, period=2)
    schedule = NeighbourSchedule(config, 8, np.random.default_rng(7))
    assert not schedule.is_static and not schedule.needs_positions
    first = schedule.mask_for_update(0, None)
    np.testing.assert_array_equal(schedule.mask_for_update(0, None), first)  # K exchanges share it
    assert not schedule.mask_for_update(1, None).any()
    # Gaps draw nothing: the talking updates 0, 2, 4 see the generator's first three draws.
    reference = np.random.default_rng(7)
    expected = [random_partners(8, 1, reference) for _ in range(3)]
    np.testing.assert_array_equal(first, expected[0])
    np.testing.assert_array_equal(schedule.mask_for_update(2, None), expected[1])
    assert not schedule.mask_for_update(3, None).any()
    np.testing.assert_array_equal(schedule.mask_for_update(4, None), expected[2])
    with pytest.raises(ValueError, match="before the last drawn"):
        schedule.mask_for_update(2, None)


def test_random_partner_schedule_differs_across_updates():
    schedule = NeighbourSchedule(TopologyConfig(kind="random_partners"), 10, np.random.default_rng(3))
    masks = [schedule.mask_for_update(u, None) for u in range(5)]
    assert len({m.tobytes() for m in masks}) > 1


def test_state_dict_round_trip_resumes_identically():
    config = TopologyConfig(kind="random_partners", partners=2)
    run = NeighbourSchedule(config, 9, np.random.default_rng(11))
    for update in range(3):
        run.mask_for_update(update, None)
    saved = json.loads(json.dumps(run.state_dict()))  # survives a JSON checkpoint
    continued = [run.mask_for_update(u, None) for u in range(2, 6)]

    resumed = NeighbourSchedule(config, 9, np.random.default_rng(999))
    resumed.load_state_dict(saved)
    for u, expected in zip(range(2, 6), continued, strict=True):
        np.testing.assert_array_equal(resumed.mask_for_update(u, None), expected)

    other = NeighbourSchedule(TopologyConfig(kind="ring"), 9, np.random.default_rng(0))
    with pytest.raises(ValueError, match="state is for"):
        other.load_state_dict(saved)
