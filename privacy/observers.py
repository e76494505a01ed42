"""Threat models: what each observer of a run sees (issue 7).

A run's observable record is its message transcript plus its public behaviour. ``RunRecord`` holds

- ``plaintext``: every message as its sender handed it to the channel (``Tap(..., keep_payloads=True)``
  wrapped around the whole stack: what endpoints read once they decrypt);
- ``wire``: the same messages as they cross the network (the tap of ``build_channel(..., wire=...)``,
  below encryption: ciphertext ``{"ct": uint8}`` with the routing header in the clear), or None when the
  run is not encrypted, in which case the wire carries the plaintext;
- ``states [T, B, S]`` and ``actions [T, B, N]``: every update's rollout concatenated along B (the
  papers' MMDP makes states and joint actions public), with the number of actions ``n_actions``.

Each threat model is one function ``RunRecord -> ObserverView``:

| name | function | sees |
| --- | --- | --- |
| T0 | ``behaviour_only`` | states and joint actions, no messages: the baseline every other row is compared with |
| T1 | ``curious_neighbour`` | behaviour + every plaintext message addressed to one agent |
| T2 | ``link_eavesdropper`` | behaviour + what crosses one link (both directions): ciphertext, sizes, kinds, rounds when encrypted |
| T3 | ``curious_server`` | behaviour + every plaintext message (an honest-but-curious relay or central unit) |
| T4 | ``colluding_neighbours`` | behaviour + the union of several agents' plaintext inboxes |

Choices. Observers see messages as *sent* (the tap is on the sending side): a receiver on a lossy network
gets a subset, so T1/T3/T4 are upper bounds on what a real receiver reads. Every observer sees behaviour,
so "leakage in excess of behaviour" is the difference between a row and T0. T3 reads plaintext: a
central unit (CL's critic) is an endpoint, and a relay that forwards ciphertext is T2 on every link
(``link_eavesdropper`` on each link, or build the view yourself from ``record.on_wire()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from confide.channels.message import Message
from confide.channels.tap import Tap

ThreatModel = Literal["T0", "T1", "T2", "T3", "T4"]
THREAT_MODELS: tuple[str, ...] = get_args(ThreatModel)


@dataclass(frozen=True)
class RunRecord:
    """Everything any observer of one run could see (see the module docstring).

    Attributes:
        plaintext: messages in sending order, payloads as sent.
        states: ``[T, B, S]`` float32 public states s_t.
        actions: ``[T, B, N]`` int64 public joint actions a_t.
        n_actions: size A of every agent's action set (fixes the length of behaviour features).
        wire: the same messages as the network carries them (ciphertext when encrypted), or None if the
            run is not encrypted (the wire then carries ``plaintext``).
    """

    plaintext: tuple[Message, ...]
    states: np.ndarray
    actions: np.ndarray
    n_actions: int
    wire: tuple[Message, ...] | None = None

    def __post_init__(self) -> None:
        if self.states.ndim != 3 or self.actions.ndim != 3:
            raise ValueError(
                f"states must be [T, B, S] and actions [T, B, N], got {self.states.shape}, {self.actions.shape}"
            )
        if self.states.shape[:2] != self.actions.shape[:2]:
            raise ValueError(f"states {self.states.shape} and actions {self.actions.shape} differ in [T, B]")
        if self.n_actions < 1:
            raise ValueError(f"n_actions must be >= 1, got {self.n_actions}")
        if self.wire is not None and len(self.wire) != len(self.plaintext):
            raise ValueError(f"wire holds {len(self.wire)} messages, plaintext {len(self.plaintext)}")

    @property
    def n_agents(self) -> int:
        return self.actions.shape[-1]

    @property
    def encrypted(self) -> bool:
        return self.wire is not None

    def on_wire(self) -> tuple[Message, ...]:
        """Messages as the network carries them."""
        return self.plaintext if self.wire is None else self.wire

    @classmethod
    def from_taps(
        cls,
        plaintext: Tap,
        states: np.ndarray,
        actions: np.ndarray,
        n_actions: int,
        wire: Tap | None = None,
    ) -> RunRecord:
        """A record from the run's taps (both built with ``keep_payloads=True``)."""
        for tap in (plaintext, wire):
            if tap is not None and not tap.keep_payloads:
                raise ValueError("the taps must keep payloads (Tap(..., keep_payloads=True))")
        return cls(
            tuple(plaintext.payloads),
            np.asarray(states),
            np.asarray(actions),
            int(n_actions),
            None if wire is None else tuple(wire.payloads),
        )


@dataclass(frozen=True)
class ObserverView:
    """What one observer sees of one run.

    Attributes:
        threat: the threat model that produced the view.
        observers: the agents (T1, T4), the link's two ends (T2), or () (T0, T3).
        messages: the messages it sees, in sending order (ciphertext envelopes for T2 on an encrypted run).
        states, actions, n_actions: public behaviour, as in ``RunRecord``.
    """

    threat: ThreatModel
    observers: tuple[int, ...]
    messages: tuple[Message, ...]
    states: np.ndarray
    actions: np.ndarray
    n_actions: int

    @property
    def n_agents(self) -> int:
        return self.actions.shape[-1]


def _view(
    record: RunRecord, threat: ThreatModel, observers: tuple[int, ...], messages: Iterable[Message]
) -> ObserverView:
    return ObserverView(threat, observers, tuple(messages), record.states, record.actions, record.n_actions)


def _agents(record: RunRecord, agents: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(a) for a in agents)
    if not out or len(set(out)) != len(out):
        raise ValueError(f"observers must be distinct agents, got {agents}")
    return out


def behaviour_only(record: RunRecord) -> ObserverView:
    """T0: an outsider who watches the environment (states, joint actions) and no message."""
    return _view(record, "T0", (), ())


def curious_neighbour(record: RunRecord, agent: int) -> ObserverView:
    """T1: agent ``agent`` reads everything addressed to it (in plaintext: it holds its link keys)."""
    (a,) = _agents(record, (agent,))
    return _view(record, "T1", (a,), (m for m in record.plaintext if m.receiver == a))


def link_eavesdropper(record: RunRecord, link: tuple[int, int]) -> ObserverView:
    """T2: a wiretap on the link between two nodes, both directions: ciphertext, sizes, kinds, rounds and
    addresses when the run is encrypted, the plaintext otherwise."""
    if len(link) != 2:
        raise ValueError(f"a link has two ends, got {link}")
    a, b = _agents(record, link)
    ends = {a, b}
    return _view(record, "T2", (a, b), (m for m in record.on_wire() if {m.sender, m.receiver} == ends))


def curious_server(record: RunRecord) -> ObserverView:
    """T3: an honest-but-curious relay or central unit that reads every message in plaintext."""
    return _view(record, "T3", (), record.plaintext)


def colluding_neighbours(record: RunRecord, agents: Sequence[int]) -> ObserverView:
    """T4: agents ``agents`` pool their inboxes (plaintext messages addressed to any of them)."""
    group = _agents(record, agents)
    members = set(group)
    return _view(record, "T4", group, (m for m in record.plaintext if m.receiver in members))


def observe(record: RunRecord, threat: ThreatModel, observers: Sequence[int] = ()) -> ObserverView:
    """The view of ``threat`` (dispatch for study runners).

    ``observers``: T1 one agent, T2 the link's two ends, T4 two or more agents; empty for T0 and T3.
    """
    if threat not in THREAT_MODELS:
        raise ValueError(f"threat must be one of {THREAT_MODELS}, got {threat!r}")
    obs = tuple(observers)
    if threat in ("T0", "T3"):
        if obs:
            raise ValueError(f"{threat} takes no observers, got {obs}")
        return behaviour_only(record) if threat == "T0" else curious_server(record)
    if threat == "T1":
        if len(obs) != 1:
            raise ValueError(f"T1 needs exactly one observing agent, got {obs}")
        return curious_neighbour(record, obs[0])
    if threat == "T2":
        if len(obs) != 2:
            raise ValueError(f"T2 needs the link's two ends, got {obs}")
        return link_eavesdropper(record, (obs[0], obs[1]))
    if len(obs) < 2:
        raise ValueError(f"T4 needs at least two colluding agents, got {obs}")
    return colluding_neighbours(record, obs)
