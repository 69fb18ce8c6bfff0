"""A channel of feature flags: tenants push their flag sets; each push is merged into one
manifest and promoted through beta, gamma and prod, with a test on each stage and a person's
approval before prod.

Push from a shell while ``lockgate server --examples`` runs::

    lockgate channels push flags --tenant acme --content '{"values": ["dark-mode"]}'
    lockgate channels stages flags          # beta and gamma flipped; prod waits
    lockgate approvals list
    lockgate approve <run id> --role approver --as alice
    lockgate channels manifest flags prod
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from lockgate import Channel, Deployment, PushRequest, Stage

#: A flag name: lower case words joined by '-'.
FLAG = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"


class FlagPush(BaseModel):
    """What a tenant pushes: the flags it turns on now."""

    model_config = ConfigDict(extra="forbid")

    values: list[str] = Field(min_length=1, max_length=50)
    note: str = Field("", max_length=200)


def merge(manifest: dict[str, Any], request: PushRequest) -> dict[str, Any]:
    """Count pushes overall and per tenant; keep each tenant's recent and unique flags.

    ``clear`` starts the manifest over with this push alone.
    """
    content = FlagPush.model_validate(request.content)  # a model, or JSON from a YAML channel
    clear = request.command == "clear"
    tenants = {} if clear else dict(manifest.get("tenants", {}))
    mine = tenants.get(request.tenant, {"count": 0, "unique_values": []})
    tenants[request.tenant] = {
        "count": mine["count"] + 1,
        "recent_values": content.values,
        "unique_values": sorted(set(mine["unique_values"]) | set(content.values)),
    }
    return {"count": 1 if clear else manifest.get("count", 0) + 1, "tenants": tenants}


def validate_request(d: Deployment) -> list[str]:
    """Flag names must be lower-case words joined by '-'."""
    return [
        f"flag {v!r} is not a lower-case-dashed name"
        for v in d.content.values
        if not re.fullmatch(FLAG, v)
    ]


def validate_manifest(d: Deployment) -> list[str]:
    """The counts add up."""
    tenants = d.manifest["tenants"]
    total = sum(t["count"] for t in tenants.values())
    if d.manifest["count"] < max((t["count"] for t in tenants.values()), default=0):
        return [f"top-level count {d.manifest['count']} is below a tenant's count"]
    return [] if total >= d.manifest["count"] else [f"tenant counts sum to {total}"]


def beta_test(d: Deployment) -> None:
    """Every tenant's recent flags are among its unique flags."""
    for name, t in d.manifest["tenants"].items():
        missing = set(t["recent_values"]) - set(t["unique_values"])
        if missing:
            raise AssertionError(f"tenant {name}: recent flags {sorted(missing)} were lost")
    d.log.info("beta serves version %s: %d tenants", d.version, len(d.manifest["tenants"]))


def gamma_test(d: Deployment) -> None:
    """No tenant turns on more than 200 flags."""
    for name, t in d.manifest["tenants"].items():
        if len(t["unique_values"]) > 200:
            raise AssertionError(f"tenant {name} has {len(t['unique_values'])} flags")


def prod_test(d: Deployment) -> None:
    """The manifest prod serves is the one this deployment made."""
    d.log.info("prod serves version %s (parent %s)", d.version, d.parent)


flags = Channel(
    "flags",
    description="Feature flags pushed by tenants, promoted beta -> gamma -> prod.",
    request=FlagPush,
    merge=merge,
    commands=("merge", "clear"),
    validate_request=validate_request,
    validate_manifest=validate_manifest,
    stages=[
        Stage("beta", test=beta_test),
        Stage("gamma", test=gamma_test),
        Stage(
            "prod",
            approval={
                "message": "Promote these flags to prod?",
                "approvers": {"roles": ["approver"]},
            },
            test=prod_test,
        ),
    ],
    public_read=True,
)
