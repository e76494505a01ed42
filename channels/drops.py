"""Message loss per directed link: i.i.d. Bernoulli, or Gilbert–Elliott bursts as in Linux netem.

Gilbert–Elliott (netem ``loss gemodel p r 1-h 1-k``) is a two-state Markov chain per directed link,
stepped once per message on that link: in the good state a message is lost with probability
``loss_in_good`` (1 − k), in the bad state with ``loss_in_bad`` (1 − h); after the loss decision the
chain moves good → bad with probability ``p`` and bad → good with ``r``, as netem does. Unlike netem
(which starts in the good state) each link's first state is drawn from the stationary distribution,
P(bad) = p / (p + r), so the loss process is stationary from the first message and its rate is
``π_good (1 − k) + π_bad (1 − h)``.

Every message costs a fixed number of draws (1 Bernoulli, 3 Gilbert–Elliott: initial state only
on a link's first message, loss, transition), in sending order, from the layer's own generator.
Lost messages never reach the channel below; they are counted under ``losses["lost"]``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from confide.channels.channel import Channel, Inbox
from confide.channels.message import Message


@dataclass(frozen=True)
class BernoulliLoss:
    """Each message is lost independently with probability ``p``."""

    p: float

    @property
    def stationary_loss(self) -> float:
        return self.p


@dataclass(frozen=True)
class GilbertElliottLoss:
    """netem's ``gemodel p r 1-h 1-k``: ``p`` good→bad, ``r`` bad→good, loss rates per state."""

    p: float
    r: float
    loss_in_bad: float = 1.0
    loss_in_good: float = 0.0

    @property
    def stationary_bad(self) -> float:
        """π_bad = p / (p + r)."""
        return self.p / (self.p + self.r)

    @property
    def stationary_loss(self) -> float:
        bad = self.stationary_bad
        return (1 - bad) * self.loss_in_good + bad * self.loss_in_bad


LossModel = BernoulliLoss | GilbertElliottLoss


class DropLayer:
    """Loses messages according to ``model``, independently per directed link."""

    def __init__(self, inner: Channel, model: LossModel, rng: np.random.Generator) -> None:
        self.inner = inner
        self.model = model
        self.rng = rng
        self.losses: Counter[str] = Counter({"lost": 0})
        self._bad: dict[tuple[int, int], bool] = {}  # Gilbert–Elliott state per directed link

    def exchange(self, round: int, outgoing: Sequence[Message]) -> Inbox:
        kept = []
        for message in outgoing:
            if self._lost((message.sender, message.receiver)):
                self.losses["lost"] += 1
            else:
                kept.append(message)
        return self.inner.exchange(round, kept)

    def _lost(self, link: tuple[int, int]) -> bool:
        model = self.model
        if isinstance(model, BernoulliLoss):
            return bool(self.rng.random() < model.p)
        bad = self._bad.get(link)
        if bad is None:
            bad = bool(self.rng.random() < model.stationary_bad)
        lost = bool(self.rng.random() < (model.loss_in_bad if bad else model.loss_in_good))
        switch = bool(self.rng.random() < (model.r if bad else model.p))
        self._bad[link] = bad != switch
        return lost

    def state_dict(self) -> dict[str, Any]:
        return {"losses": dict(self.losses), "bad": dict(self._bad), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.losses = Counter(state["losses"])
        self._bad = dict(state["bad"])
        self.rng.bit_generator.state = state["rng"]
