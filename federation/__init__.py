"""confide.federation: a run as a Flower federation — each agent a ``ClientApp`` whose private state
stays in its node, a relay ``ServerApp`` that orchestrates rounds — writing the same results as
``confide train`` (``docs/federation.md``)."""

from confide.federation.runner import BACKENDS, Backend, check_federable, federate

__all__ = ["BACKENDS", "Backend", "check_federable", "federate"]
