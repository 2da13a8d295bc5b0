"""Work units of a rollout and their assignment to processes.

A rollout of ``M`` members from ``N`` init times is cut into units of one init time and
one block of at most ``B`` consecutive members (``B`` = ``batch_members``, else ``M``).
Units are the grain of everything that must not depend on the number of processes:

* the members of a unit go through the model together, in the same batches whatever
  the number of processes, so a 2-process run is bit-identical to a 1-process one;
* a unit writes only its own chunks of the output (the member chunk of the forecast
  file is ``B``), so processes never write the same chunk;
* a unit saves its own resume state, so a killed run resumes unit by unit.

Process ``r`` of ``P`` runs units ``r, r + P, r + 2P, ...`` (round-robin over the
init-major order, which spreads the init times when there are more of them than
processes, and the member blocks otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["WorkUnit", "member_block", "work_units", "units_of_rank"]


@dataclass(frozen=True)
class WorkUnit:
    """Members ``start .. stop - 1`` of init time number ``init_index``."""

    init_index: int
    start: int
    stop: int

    @property
    def key(self) -> str:
        """A file-name-safe identifier, e.g. ``"i0003_m0008"``."""
        return f"i{self.init_index:04d}_m{self.start:04d}"

    @property
    def size(self) -> int:
        return self.stop - self.start


def member_block(members: int, batch_members: int | None) -> int:
    """Members per unit: ``batch_members`` (at most ``members``), else every member."""
    return min(batch_members or members, members)


def work_units(n_inits: int, members: int, block: int) -> list[WorkUnit]:
    """Every unit, init-major: ``[(0, 0..B), (0, B..2B), ..., (1, 0..B), ...]``."""
    return [WorkUnit(i, start, min(start + block, members))
            for i in range(n_inits) for start in range(0, members, block)]


def units_of_rank(units: list[WorkUnit], rank: int, world_size: int) -> list[WorkUnit]:
    """The units process ``rank`` of ``world_size`` runs (round-robin)."""
    return units[rank::world_size]
