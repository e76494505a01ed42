"""Privacy: accounting of what the DP-noise channel layer releases, and measured leakage (issue 7).

- ``accounting``: per-agent (ε, δ) of the DP-noise layer (imported eagerly: the channel layer needs it).
- ``observers``: threat models T0–T4, ``RunRecord`` → ``ObserverView``.
- ``attacks``: TD inversion, policy reconstruction, ``extract`` features.
- ``estimators``: the learned attack, its metrics, controls and the empirical DP audit.
- ``dp_sgd``: DP-SGD of the banks PS and VPS send (per-sample, per-agent clipping, Opacus noise and RDP
  accounting); import it from its module (Opacus itself is imported only when DP-SGD is on).

The last three are loaded on first use (``confide.privacy.extract`` works), so importing the channels,
which import the accountants, does not import scipy's optimisers.
"""

from __future__ import annotations

import importlib
from typing import Any

from confide.privacy.accounting import GaussianAccountant, LaplaceAccountant, PrivacyAccountant

_LAZY = {
    "observers": (
        "THREAT_MODELS",
        "ObserverView",
        "RunRecord",
        "ThreatModel",
        "behaviour_only",
        "colluding_neighbours",
        "curious_neighbour",
        "curious_server",
        "link_eavesdropper",
        "observe",
    ),
    "attacks": (
        "FeatureSpec",
        "extract",
        "feature_names",
        "fit_policy",
        "policy_fidelity",
        "policy_from_parameters",
        "reward_error",
        "rewards_from_value_message",
        "rewards_from_values",
    ),
    "estimators": (
        "AttackResult",
        "EpsilonAudit",
        "Excess",
        "Interval",
        "LeakageReport",
        "RegressionResult",
        "compare",
        "empirical_epsilon",
        "leakage_with_controls",
        "learned_attack",
        "learned_regression",
        "shuffled_control",
    ),
}
_WHERE = {name: module for module, names in _LAZY.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(f"confide.privacy.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'confide.privacy' has no attribute {name!r}")


__all__ = ["GaussianAccountant", "LaplaceAccountant", "PrivacyAccountant", *sorted(_WHERE)]
