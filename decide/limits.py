"""The bounds on what a loop and its policy may be configured to do, each with the reason for it.

One place, so that a loop's settings, its policy's parameters and its feature
space agree on them. Pure constants: importing this costs nothing.
"""

from __future__ import annotations

MIN_FEATURE_DIMENSION = 2
"""Least ``featureDimension`` of a loop: with one index every feature would land on the bias, and nothing could be learned."""

MAX_FEATURE_DIMENSION = 4_096
"""Most ``featureDimension`` of a loop, and most dimensions of a linear policy: its state holds d-by-d matrices
(128 MiB each at this size), and every decision solves with one."""

MAX_HASH_DIMENSION = 2**24
"""Longest vector a ``FeatureSpace`` hashes into (one action's vector is then 128 MiB). Not a loop setting: a loop's
spaces are bounded by ``MAX_FEATURE_DIMENSION``; this only stops a space built directly from exhausting memory."""

MAX_SAMPLES = 65_536
"""Most Monte Carlo samples a Thompson sampling policy draws per decision: keeps a decision's memory and latency bounded."""

MAX_WAIT_SECONDS = 30 * 86_400.0
"""Longest ``rewardWaitTime`` and ``activationTimeout``: an open join is held (in memory or in ``pending_joins``) that long."""

MIN_UPDATE_INTERVAL = 0.01
"""Shortest ``updateInterval``: every update writes a policy version, so learning more often would only fill the store."""

MAX_UPDATE_INTERVAL = 86_400.0
"""Longest ``updateInterval``: a loop learns at least daily, or its examples pile up unlearned."""

MAX_KEEP_VERSIONS = 1_000_000
"""Most policy versions a loop keeps for rollback and evaluation; each holds the policy's full state."""
