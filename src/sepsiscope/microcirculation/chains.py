"""Segments joined through junctions into the longer vessels red cells follow.

A segment runs between junctions, so a capillary crossed by side branches is cut into pieces a few
tens of µm long. Red cells at a normal capillary speed (about 1.3 mm/s) move 40-60 µm between two
frames at 25 fps: farther than such a piece is long, so no space-time diagram of the piece alone
can follow them. The cells keep going straight through the junction, though, into the piece on
the other side. :func:`chain_segments` joins, at every junction, the pairs of segment ends that
continue each other most straightly (turning by at most ``max_turn_deg``; a side branch at
a T junction turns by 90°); the chained centreline
is as long as the vessel, and its space-time diagram follows cells that a piece cannot.

Counting vessels (:func:`count_vessels`, ``n_vessels``) mends more of the skeleton's topology than
the flow needs (:func:`vessel_chains`: spurs, short breaks, crossings split into two junctions);
the flow's chains stay as they are.
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


class _Sets:
    """Union-find over integers (segment ends meeting at one junction, segments of one vessel)."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, a: int) -> int:
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        self.parent[self.find(a)] = self.find(b)


def _pair_ends(
    ends: Sequence[int], direction: np.ndarray, cos_limit: float
) -> list[tuple[int, int]]:
    """Ends at one junction paired straightest first: the straightest pair always (a vessel runs
    on through a junction, bending or not, and the other ends branch off it), any further pair
    only while it turns by at most the limit (``cos_limit``: cosine of the largest turn)."""
    candidates = sorted(
        ((-float(direction[a] @ direction[b]), a, b)
         for k, a in enumerate(ends) for b in ends[k + 1 :]),
        reverse=True,
    )  # fmt: skip
    used: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for straightness, a, b in candidates:
        if pairs and straightness < cos_limit:
            break
        if a not in used and b not in used:
            used.update((a, b))
            pairs.append((a, b))
    return pairs


def vessel_chains(
    paths_px: Sequence[np.ndarray],
    lengths_um: Sequence[float],
    *,
    um_per_px: float,
    spur_um: float = 15.0,
    join_px: float = 3.0,
    gap_um: float = 10.0,
    gap_turn_deg: float = 40.0,
    crossing_um: float = 12.0,
    max_turn_deg: float = 35.0,
    direction_um: float = 10.0,
) -> list[list[int]]:
    """Segments grouped into vessels as the consensus counts them, the skeleton's topology mended.

    :func:`chain_segments` (the flow's extensions) joins only the straightest pairs of ends on one
    junction pixel, and leaves a vessel in pieces wherever the skeleton broke it. For counting:

    1. **spurs**: a piece under ``spur_um`` µm from a junction to a free end is no vessel and is
       left out (the vessel it sprouts from then runs on through that junction);
    2. **short breaks**: two free ends at most ``gap_um`` µm apart, each pointing at the other
       (within ``gap_turn_deg``), are one vessel whose faint stretch was lost;
    3. **crossings split into two junctions**: a piece at most ``crossing_um`` µm long between
       two junctions (the skeleton of two vessels crossing, or running together for a few µm) is
       contracted into one junction when fewer ends stay unpaired there than at the two apart,
       and kept otherwise (e.g. two branches leaving a vessel close together);
    4. at every junction the straightest pair of ends always continues one vessel, further pairs
       only when they turn by at most ``max_turn_deg``; an unpaired end starts a branch (a
       branching capillary is a vessel of its own, its parent runs on through the branch point).

    Parameters
    ----------
    paths_px : sequence of (N_i, 2) float ndarray
        Segment centrelines ``(row, col)``, px; segments that meet share (or nearly share) an end.
    lengths_um : sequence of float
        Segment lengths, µm.
    um_per_px : float
    join_px : float
        Ends closer than this (px: the skeleton's junction pixels) meet at one junction.
    direction_um : float
        Each end's direction is taken from the point this far (µm) inside its segment.

    Returns
    -------
    list of list of int
        The segment indices of each vessel (unordered; a loop is one vessel); spurs and the pieces
        contracted into junctions are in none.
    """
    n = len(paths_px)
    if n == 0:
        return []
    paths = [np.asarray(p, float) for p in paths_px]
    ends = np.array([p[0 if side == 0 else -1] for p in paths for side in (0, 1)])
    direction = np.array(
        [_end_direction(p, side == 0, direction_um / um_per_px) for p in paths for side in (0, 1)]
    )
    nodes = _Sets(2 * n)
    for a, b in cKDTree(ends).query_pairs(join_px):
        nodes.union(a, b)
    active = np.ones(n, bool)

    def junctions() -> dict[int, list[int]]:
        """The ends of the active segments at each junction (or free end)."""
        groups: dict[int, list[int]] = {}
        for e in np.flatnonzero(np.repeat(active, 2)):
            groups.setdefault(nodes.find(int(e)), []).append(int(e))
        return groups

    # 1. spurs; one at a time, as pruning one can make a spur of another
    pruned = True
    while pruned:
        pruned = False
        groups = junctions()
        for i in np.flatnonzero(active):
            sizes = sorted(len(groups[nodes.find(2 * int(i) + side)]) for side in (0, 1))
            if lengths_um[i] < spur_um and sizes[0] == 1 and sizes[1] >= 3:
                active[i], pruned = False, True
                break
    # 2. short breaks: free ends facing each other, nearest first
    groups = junctions()
    free = [g[0] for g in groups.values() if len(g) == 1]
    cos_gap = np.cos(np.radians(gap_turn_deg))
    breaks = []
    if len(free) > 1 and gap_um > 0:
        for a, b in cKDTree(ends[free]).query_pairs(gap_um / um_per_px):
            ea, eb = free[a], free[b]
            if ea // 2 == eb // 2:
                continue
            gap = ends[eb] - ends[ea]
            distance = float(np.hypot(*gap))
            if (
                direction[ea] @ gap < cos_gap * distance
                or -(direction[eb] @ gap) < cos_gap * distance
            ):
                continue
            breaks.append((distance, ea, eb))
    mended: set[int] = set()
    for _, ea, eb in sorted(breaks):
        if ea not in mended and eb not in mended:
            mended.update((ea, eb))
            nodes.union(ea, eb)
    # 3. crossings split into two junctions, shortest piece first
    cos_limit = np.cos(np.radians(max_turn_deg))
    for i in sorted(np.flatnonzero(active).tolist(), key=lambda k: lengths_um[k]):
        if lengths_um[i] > crossing_um:
            break
        first, second = nodes.find(2 * i), nodes.find(2 * i + 1)
        if first == second:
            continue
        groups = junctions()
        if len(groups[first]) < 3 or len(groups[second]) < 3:
            continue
        unpaired = (
            len(groups[first])
            + len(groups[second])
            - 2
            * (
                len(_pair_ends(groups[first], direction, cos_limit))
                + len(_pair_ends(groups[second], direction, cos_limit))
            )
        )
        merged = [e for e in groups[first] + groups[second] if e // 2 != i]
        if len(merged) - 2 * len(_pair_ends(merged, direction, cos_limit)) < unpaired:
            active[i] = False
            nodes.union(2 * i, 2 * i + 1)
    # 4. pairs of ends at every junction; a vessel is a run of paired segments
    vessels = _Sets(n)
    for group in junctions().values():
        for a, b in _pair_ends(group, direction, cos_limit):
            vessels.union(a // 2, b // 2)
    members: dict[int, list[int]] = {}
    for i in np.flatnonzero(active).tolist():
        members.setdefault(vessels.find(i), []).append(i)
    return list(members.values())


def count_vessels(
    paths_px: Sequence[np.ndarray],
    lengths_um: Sequence[float],
    *,
    um_per_px: float,
    min_um: float = 15.0,
) -> int:
    """Vessels as the consensus counts them: centreline paths between junctions and ends, with
    spurs left out, short breaks and crossings split into two junctions mended, and the pieces
    that continue each other through a junction merged (:func:`vessel_chains`); vessels shorter
    than ``min_um`` µm in all (and spurs that short) are left out.

    Not :func:`chain_segments`' chains, which join only what the flow's extensions need."""
    vessels = vessel_chains(paths_px, lengths_um, um_per_px=um_per_px, spur_um=min_um)
    return sum(1 for vessel in vessels if sum(lengths_um[i] for i in vessel) >= min_um)
