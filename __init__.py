"""confide: multi-agent reinforcement learning under private rewards.

The repository root is this package; see README.md for the two commands a newcomer needs.
"""

__version__ = "0.1.0"
