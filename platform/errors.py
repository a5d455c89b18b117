"""The errors the platform layer raises (sessions, clusters, jobs, shards): each names the fix.

The layers above have their own (``framelab.frames.errors``); these live here
because the platform never imports the layers above it.
"""

from __future__ import annotations


class PlatformError(Exception):
    """Base class of the platform layer's errors."""


class SessionMismatchError(PlatformError, RuntimeError):
    """``connect()`` asked for a different cluster or size than the session already running."""


class NodeLostError(PlatformError, RuntimeError):
    """A worker that held part of a computation died (its node was lost, or it ran out of memory)."""


class JobSubmissionError(PlatformError, RuntimeError):
    """A job could not be submitted, found or followed on the cluster."""


class StalledError(PlatformError, RuntimeError):
    """A job made no progress for the stall limit while its tasks waited for resources nobody gives back."""
