r"""The innovations of a stochastic model's noise, each drawn once.

A stochastic model's step noise is an AR(1) in time, written as the sum of the innovations
:math:`\xi` of its last :math:`K` steps (:meth:`~forecast.models.base.PrognosticModel.step_noise`)
so that it depends on named generators only and a resumed run draws what an uninterrupted one
would. Consecutive steps share :math:`K` of those innovations; :class:`InnovationMemo` keeps
them, so a step costs one draw instead of :math:`K + 1` (:math:`K` = 31 for :math:`\phi` = 0.8)
and gives the same numbers, since each innovation is a function of its generators alone.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import torch

__all__ = ["InnovationMemo", "DEFAULT_MEMO_BYTES"]

#: what a memo keeps at most; past it the least recently used innovations are dropped (and
#: drawn again if asked for), so a large grid costs draws, not memory
DEFAULT_MEMO_BYTES = 256 * 1024**2

Name = TypeVar("Name", bound=Hashable)


class InnovationMemo(Generic[Name]):
    """Innovations by name, drawn once: ``memo(name)`` is ``draw(name)``.

    ``name`` says which innovation (a training step, or a model, noise seed, members and valid
    time in a rollout); ``draw(name)`` draws it (a model's ``draw_noise`` from the generators
    that name seeds). The returned tensors are shared: callers must not change them in place.
    """

    def __init__(self, draw: Callable[[Name], torch.Tensor], max_bytes: int = DEFAULT_MEMO_BYTES,
                 max_items: int | None = None) -> None:
        self.draw, self.max_bytes, self.max_items = draw, max_bytes, max_items
        self._kept: OrderedDict[Name, torch.Tensor] = OrderedDict()
        self._bytes = 0
        self.draws = 0   # innovations drawn (for tests and benchmarks)

    def __call__(self, name: Name) -> torch.Tensor:
        kept = self._kept.get(name)
        if kept is not None:
            self._kept.move_to_end(name)
            return kept
        value = self.draw(name)
        self.draws += 1
        size = value.numel() * value.element_size()
        if size <= self.max_bytes and self.max_items != 0:
            while self._bytes + size > self.max_bytes or (self.max_items is not None and len(self._kept) >= self.max_items):
                self._bytes -= self._pop_oldest()
            self._kept[name] = value
            self._bytes += size
        return value

    def reserve(self, items: int) -> None:
        """Keep at least ``items`` innovations (byte budget permitting): a rollout that steps
        ``G`` batches of members in turn needs ``G (K + 2)`` to draw each once."""
        if self.max_items is not None:
            self.max_items = max(self.max_items, items)

    def _pop_oldest(self) -> int:
        _, old = self._kept.popitem(last=False)
        return old.numel() * old.element_size()

    def __len__(self) -> int:
        return len(self._kept)
