"""confide.federation: a run as a Flower federation — each agent a ``ClientApp`` whose private state
stays in its node, a relay ``ServerApp`` that orchestrates rounds — writing the same results as
``confide train`` (``docs/federation.md``).

The exports load lazily: a deployment SuperNode starts a fresh ClientApp process per message, and
``forwarder`` must import without torch or the learners."""

from typing import Any

__all__ = ["BACKENDS", "Backend", "check_federable", "federate"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from confide.federation import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'confide.federation' has no attribute {name!r}")
