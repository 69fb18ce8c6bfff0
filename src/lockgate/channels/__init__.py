"""Channels: tenants push content, a merge folds it into versioned manifests, and each version
is promoted through stages with atomic flips and per-stage tests."""

from lockgate.channels.model import Channel, Deployment, PushRequest, Stage

__all__ = ["Channel", "Deployment", "PushRequest", "Stage"]
