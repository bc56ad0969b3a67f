"""Teams from the host's own model: a SaaS app's organisations get budgets and rate limits without a
parallel hierarchy to keep in step.

::

    BIFROST = {
        ...,
        "TEAM_MODEL": "accounts.Organisation",   # the host's team model ("app_label.Model")
        "TEAM_MEMBERS": "members",                # the lookup from it to its users ("memberships__user")
    }

A key whose owner is a member of one of the model's rows belongs to that team (the first by primary key,
for an owner in several), unless the key names a team or customer of its own. The team's id in the
gateway is ``"<app_label>.<model>:<pk>"`` (``"accounts.organisation:42"``); its budgets, rate limit and
customer are set like any team's (the management API, the admin), in a `Team` row of that id created
when first needed. Membership is read when a key is looked up, so a member who moves organisation takes
their keys along (within the gateway's 2-second lookup cache).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.db.models import Model

from .conf import conf

__all__ = ["configured_error", "host_team", "host_teams", "is_host_team", "team_of_owners"]


def _model() -> type[Model] | None:
    label = conf.TEAM_MODEL
    if not label:
        return None
    model: type[Model] = apps.get_model(label)
    return model


def _id(model: type[Model], pk: Any) -> str:
    return f"{model._meta.label_lower}:{pk}"


def is_host_team(team_id: str) -> bool:
    model = _model()
    return model is not None and team_id.startswith(model._meta.label_lower + ":")


def host_team(team_id: str) -> tuple[str, str] | None:
    """(id, name) of the host row a team id names, or None (not a host team id, or no such row)."""
    model = _model()
    if model is None or not is_host_team(team_id):
        return None
    pk = team_id.partition(":")[2]
    try:
        row = model._default_manager.filter(pk=pk).first()
    except (ValueError, TypeError):  # not a primary key of this model
        return None
    return None if row is None else (team_id, str(row))


def host_teams() -> list[tuple[str, str]]:
    """(id, name) of every row of the host's team model."""
    model = _model()
    if model is None:
        return []
    return [(_id(model, row.pk), str(row)) for row in model._default_manager.order_by("pk")]


def team_of_owners(owner_pks: Iterable[Any]) -> dict[Any, str]:
    """Each owner's team id: the first (by primary key) host row they are a member of."""
    model = _model()
    owners = {pk for pk in owner_pks if pk is not None}
    if model is None or not owners:
        return {}
    members = conf.TEAM_MEMBERS
    rows = model._default_manager.filter(**{f"{members}__in": owners}).order_by("pk")
    found: dict[Any, str] = {}
    for owner, pk in rows.values_list(members, "pk"):
        found.setdefault(owner, _id(model, pk))
    return found


def configured_error() -> str | None:
    """What is wrong with TEAM_MODEL / TEAM_MEMBERS, or None (also when they are not set)."""
    if not conf.TEAM_MODEL and not conf.TEAM_MEMBERS:
        return None
    named = [conf.TEAM_MODEL, conf.TEAM_MEMBERS]
    if not all(isinstance(value, str) and value for value in named):
        return "BIFROST['TEAM_MODEL'] and BIFROST['TEAM_MEMBERS'] are set together, as strings"
    try:
        model = _model()
    except (LookupError, ValueError, ImproperlyConfigured):
        model = None
    if model is None:
        return f"BIFROST['TEAM_MODEL'] {conf.TEAM_MODEL!r} is not an installed model ('app_label.Model')"
    try:
        model._default_manager.filter(**{f"{conf.TEAM_MEMBERS}__in": []})
    except FieldError:
        lookup, model_name = conf.TEAM_MEMBERS, conf.TEAM_MODEL
        return f"BIFROST['TEAM_MEMBERS'] {lookup!r} is not a lookup from {model_name} to its users"
    return None
