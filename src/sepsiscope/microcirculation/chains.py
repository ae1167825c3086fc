"""Segments joined through junctions into the longer vessels red cells follow.

A segment runs between junctions, so a capillary crossed by side branches is cut into pieces a few
tens of µm long. Red cells at a normal capillary speed (about 1.3 mm/s) move 40-60 µm between two
frames at 25 fps: farther than such a piece is long, so no space-time diagram of the piece alone
can follow them. The cells keep going straight through the junction, though, into the piece on
the other side. :func:`chain_segments` joins, at every junction, the pairs of segment ends that
continue each other most straightly (turning by at most ``max_turn_deg``; a side branch at
a T junction turns by 90°); the chained centreline
is as long as the vessel, and its space-time diagram follows cells that a piece cannot.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import cKDTree


def _end_direction(path: np.ndarray, at_start: bool, reach_px: float) -> np.ndarray:
    """Unit vector pointing out of the path at one end, from a point ``reach_px`` inside."""
    steps = np.hypot(*np.diff(path, axis=0).T)
    arc = np.concatenate([[0.0], np.cumsum(steps)])
    reach = min(reach_px, arc[-1])
    if at_start:
        inner = path[int(np.searchsorted(arc, reach))] if reach > 0 else path[-1]
        vector = path[0] - inner
    else:
        inner = path[int(np.searchsorted(arc, arc[-1] - reach))] if reach > 0 else path[0]
        vector = path[-1] - inner
    norm = float(np.hypot(*vector))
    return vector / norm if norm > 0 else np.zeros(2)


def chain_segments(
    paths_px: Sequence[np.ndarray],
    *,
    join_px: float = 3.0,
    direction_px: float = 8.0,
    max_turn_deg: float = 35.0,
    classes: Sequence[object] | None = None,
) -> list[list[tuple[int, bool]]]:
    """Chains of segments that continue each other straight through junctions.

    Parameters
    ----------
    paths_px : sequence of (N_i, 2) float ndarray
        Segment centrelines ``(row, col)``; segments that meet share (or nearly share) an end.
    join_px : float
        Ends closer than this meet at one junction. In px on purpose: segments that meet end on
        the same junction pixel of the skeleton (or one beside it), whatever the µm/px.
    direction_px : float
        Each end's direction is taken from the point this far inside the segment.
    max_turn_deg : float
        The largest change of direction a chain makes at a junction.
    classes : sequence, optional
        A label per segment (small or large vessel); only segments of one class are chained: a
        capillary running into a venule does not carry on as that venule, whose dense, slower
        column would dominate the chain's space-time diagram.

    Returns
    -------
    list of chains
        Every segment in exactly one chain; a chain is a list of ``(segment index, reversed)``
        in order along the vessel (``reversed``: the segment runs end to start in the chain).
    """
    n = len(paths_px)
    ends = np.array([p[0 if side == 0 else -1] for p in paths_px for side in (0, 1)], float)
    if n == 0:
        return []
    direction = np.array(
        [
            _end_direction(np.asarray(p, float), side == 0, direction_px)
            for p in paths_px
            for side in (0, 1)
        ]
    )
    # candidate pairs of ends of different segments at one junction, straightest first
    cos_limit = np.cos(np.radians(max_turn_deg))
    pairs = []
    for a, b in cKDTree(ends).query_pairs(join_px):
        if a // 2 == b // 2 or (classes is not None and classes[a // 2] != classes[b // 2]):
            continue
        straightness = -float(direction[a] @ direction[b])  # 1: b continues a's heading
        if straightness >= cos_limit:
            pairs.append((straightness, a, b))
    link = -np.ones(2 * n, int)
    for _, a, b in sorted(pairs, reverse=True):
        if link[a] < 0 and link[b] < 0:
            link[a], link[b] = b, a
    chains, seen = [], np.zeros(n, bool)
    for start in range(n):
        if seen[start]:
            continue
        # walk back from this segment's start end to the chain's first segment
        segment, entry = start, 0  # entering ``segment`` at its end ``entry`` (0 start, 1 end)
        while link[2 * segment + entry] >= 0:
            other = link[2 * segment + entry]
            if other // 2 == start:
                break  # a loop: start anywhere
            segment, entry = other // 2, 1 - other % 2
        chain = []
        while not seen[segment]:
            seen[segment] = True
            chain.append((segment, entry == 1))  # entered at its end: runs reversed
            exit_end = 2 * segment + (1 - entry)
            if link[exit_end] < 0:
                break
            segment, entry = link[exit_end] // 2, link[exit_end] % 2
        chains.append(chain)
    return chains


def chain_path(paths_px: Sequence[np.ndarray], chain: Sequence[tuple[int, bool]]) -> np.ndarray:
    """The centreline of a chain, ``(N, 2)`` px, its segments in order and orientation."""
    parts = [np.asarray(paths_px[i], float)[::-1] if rev else np.asarray(paths_px[i], float)
             for i, rev in chain]  # fmt: skip
    joined = [parts[0]]
    for part in parts[1:]:
        # a shared junction point appears once
        joined.append(part[1:] if np.allclose(part[0], joined[-1][-1]) else part)
    return np.concatenate(joined)


def extended_segments(
    chains: Sequence[Sequence[tuple[int, bool]]],
    lengths_px: Sequence[float],
    *,
    extend_px: float,
) -> dict[int, list[tuple[int, bool]]]:
    """For each chained segment, itself with its chain neighbours up to ``extend_px`` each side.

    Neighbours are added whole, on each side until the added length reaches ``extend_px``: the
    path is as local as the velocity it measures allows (a long chain may run through vessels
    that flow differently). Segments without a neighbour are left out.
    """
    result = {}
    for chain in chains:
        if len(chain) < 2:
            continue
        for position, (segment, _) in enumerate(chain):
            first = last = position
            added = 0.0
            while first > 0 and added < extend_px:
                first -= 1
                added += lengths_px[chain[first][0]]
            added = 0.0
            while last < len(chain) - 1 and added < extend_px:
                last += 1
                added += lengths_px[chain[last][0]]
            result[segment] = list(chain[first : last + 1])
    return result


def count_vessels(
    chains: Sequence[Sequence[tuple[int, bool]]], lengths_um: Sequence[float], *, min_um: float
) -> int:
    """Vessels as the consensus counts them: centreline paths between junctions and ends, the
    pieces that continue each other straight through a junction merged (``chains``), and spurs
    (paths shorter than ``min_um`` µm in all, skeleton whiskers) left out."""
    return sum(1 for chain in chains if sum(lengths_um[i] for i, _ in chain) >= min_um)
