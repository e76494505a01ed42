"""Privacy: accounting of what the DP-noise channel layer releases, per agent."""

from confide.privacy.accounting import GaussianAccountant, LaplaceAccountant, PrivacyAccountant

__all__ = ["GaussianAccountant", "LaplaceAccountant", "PrivacyAccountant"]
