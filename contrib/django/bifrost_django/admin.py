"""The Django admin for keys and usage.

Creating a key shows its plaintext once, on the page that answers the save (as
djangorestframework-api-key does), and nowhere else: not in a stored message, not in the database,
which keeps only the prefix and the hash. The hash is never shown or editable; revocation is an
action, and permanent. A new key starts with the limits of ``BIFROST["DEFAULT_KEY"]``, as the keys users
create themselves do; its owner is picked with an autocomplete over the site's users. Usage logs are
read-only, filterable by user, key, provider, model, status and date, with totals per user for whatever
the filters select.

Who sees what: the admin follows Django's model permissions (``bifrost.view_virtualkey``, ...), and a
staff user granted them sees every user's keys (name, owner, prefix; never a plaintext or a hash).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet, Sum
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from bifrost_asgi.governance import generate_key

from .conf import conf
from .models import Counter, Customer, ProviderGovernance, Team, UsageLog, VirtualKey

__all__ = ["UsageLogAdmin", "VirtualKeyAdmin", "per_user_totals"]

_TOTALS_SHOWN = 50
# The parts of DEFAULT_KEY that are fields of a key, as the add form's starting values.
_TEMPLATE_FIELDS = ("allow_all_providers", "provider_configs", "budgets", "rate_limit")

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin
else:

    class ModelAdmin:
        """``ModelAdmin[Model]`` for the type checker (django-stubs); Django's own class at run time."""

        def __class_getitem__(cls, model: object) -> type[admin.ModelAdmin]:
            return admin.ModelAdmin


@admin.register(VirtualKey)
class VirtualKeyAdmin(ModelAdmin[VirtualKey]):
    """Keys: created here with the plaintext shown once; the hash never shown; revoked by an action."""

    list_display = ("name", "owner", "hint", "is_active", "revoked_at", "expires_at", "created")
    list_filter = ("is_active", ("revoked_at", admin.EmptyFieldListFilter), "allow_all_providers", "created")
    # An autocomplete over the users when the user model's admin can search (`get_autocomplete_fields`);
    # the id box with its lookup popup otherwise (a custom user model without a searchable admin).
    raw_id_fields = ("owner",)
    fields = (
        "name",
        "owner",
        "description",
        "hint",
        "is_active",
        "revoked_at",
        "expires_at",
        "allow_all_providers",
        "provider_configs",
        "budgets",
        "rate_limit",
        "team",
        "customer",
        "created",
        "id",
    )
    actions = ("revoke_keys",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The plaintext of a key saved by this request, until the response shows it. Weak: never kept.
        self._shown_once: WeakKeyDictionary[VirtualKey, str] = WeakKeyDictionary()

    def get_search_fields(self, request: HttpRequest) -> list[str]:
        return ["name", "prefix", "id", f"owner__{get_user_model().USERNAME_FIELD}"]

    def get_autocomplete_fields(self, request: HttpRequest) -> list[str]:
        users = self.admin_site._registry.get(get_user_model())
        return ["owner"] if users is not None and users.get_search_fields(request) else []

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """A new key starts with what ``DEFAULT_KEY`` allows and spends, as users' own keys do."""
        template = conf.DEFAULT_KEY if isinstance(conf.DEFAULT_KEY, dict) else {}
        initial = {name: template[name] for name in _TEMPLATE_FIELDS if name in template}
        return {**initial, **super().get_changeform_initial_data(request)}

    def get_readonly_fields(self, request: HttpRequest, obj: VirtualKey | None = None) -> list[str]:
        readonly = ["hint", "revoked_at", "created", "id"]
        if obj is not None and obj.revoked:
            readonly.append("is_active")  # revocation is permanent
        return readonly

    @admin.display(description="key")
    def hint(self, obj: VirtualKey) -> str:
        return obj.hint if obj.prefix else "(generated when saved)"

    # Revoking changes keys: a staff user allowed only to view them must not be offered the action.
    @admin.action(description="Revoke selected keys (permanent)", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[VirtualKey]) -> None:
        # One save per key (not one UPDATE): each revocation sends bifrost_django.signals.key_revoked.
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            key.revoke()
        revoked = len(keys)
        self.message_user(
            request, f"Revoked {revoked} key(s). The gateway stops accepting them within seconds."
        )

    def save_model(
        self, request: HttpRequest, obj: VirtualKey, form: ModelForm[VirtualKey], change: bool
    ) -> None:
        if not change:
            generated = generate_key()
            obj.prefix, obj.hashed_key = generated.prefix, generated.hashed
            self._shown_once[obj] = generated.value
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: VirtualKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        value = self._shown_once.pop(obj, None)
        if value is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": f"Key “{obj.name}” created",
            "key": obj,
            "value": value,
        }
        response = TemplateResponse(request, "admin/bifrost/virtualkey/key_created.html", context)
        response["Cache-Control"] = "no-store"  # no cache, proxy or back button keeps the page
        return response


def per_user_totals(logs: QuerySet[UsageLog], limit: int = _TOTALS_SHOWN) -> list[dict[str, Any]]:
    """Requests, tokens and cost per user over ``logs`` (most expensive first)."""
    username = f"owner__{get_user_model().USERNAME_FIELD}"
    rows = (
        logs.order_by()
        .values("owner", username)
        .annotate(requests=Count("id"), tokens=Sum("total_tokens"), cost=Sum("cost"))
        .order_by("-cost", "-requests")[:limit]
    )
    return [
        {
            "owner": row["owner"],
            "user": row[username] or "(no user)",
            **{k: row[k] for k in ("requests", "tokens", "cost")},
        }
        for row in rows
    ]


@admin.register(UsageLog)
class UsageLogAdmin(ModelAdmin[UsageLog]):
    """Usage, read-only: filters for user, key, provider, model, status and date; totals per user."""

    list_display = (
        "timestamp",
        "owner",
        "virtual_key_name",
        "provider",
        "model",
        "object",
        "status",
        "status_code",
        "total_tokens",
        "cost",
        "latency",
    )
    list_filter = (
        ("owner", admin.RelatedOnlyFieldListFilter),
        ("virtual_key", admin.RelatedOnlyFieldListFilter),
        "provider",
        "model",
        "status",
        "timestamp",
    )
    date_hierarchy = "timestamp"
    list_select_related = ("owner",)
    search_fields = ("request_id", "model", "virtual_key_name")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        charts = path("charts/", self.admin_site.admin_view(self.charts_view), name="bifrost_usagelog_charts")
        return [charts, *super().get_urls()]

    def charts_view(self, request: HttpRequest) -> HttpResponse:
        """Requests, tokens, cost, errors, latency and budgets over time, drawn from the gateway's
        ``/api/logs/charts`` (which the gateway opens to staff, as the rest of the management API)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        gateway = reverse("bifrost:gateway", kwargs={"subpath": ""}).rstrip("/")
        context = {**self.admin_site.each_context(request), "opts": self.model._meta,
                   "title": "Usage charts", "charts_url": f"{gateway}/api/logs/charts"}  # fmt: skip
        return TemplateResponse(request, "admin/bifrost/usagelog/charts.html", context)

    def has_change_permission(self, request: HttpRequest, obj: UsageLog | None = None) -> bool:
        return False  # a usage record is a fact; it can be viewed (or deleted), never edited

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)
        if isinstance(context, dict) and "cl" in context:
            context["totals_per_user"] = per_user_totals(context["cl"].queryset)
        return response


@admin.register(Team)
class TeamAdmin(ModelAdmin[Team]):
    list_display = ("name", "id", "customer", "created")
    search_fields = ("name", "id")


@admin.register(Customer)
class CustomerAdmin(ModelAdmin[Customer]):
    list_display = ("name", "id", "created")
    search_fields = ("name", "id")


@admin.register(Counter)
class CounterAdmin(ModelAdmin[Counter]):
    """Read-only: the live windows, for answering 'why was I refused?'."""

    list_display = ("key", "used", "reserved", "start", "end")
    search_fields = ("key",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Counter | None = None) -> bool:
        return False


# -- provider-level limits (Bifrost's /api/governance/providers) ------------------------------------------


@admin.register(ProviderGovernance)
class ProviderGovernanceAdmin(ModelAdmin[ProviderGovernance]):
    """Budgets and a rate limit on a whole provider; they apply to every call to it, with or without a key.
    The gateway applies a change within seconds (its lookups are cached that long)."""

    list_display = ("provider", "budgets", "rate_limit")
    search_fields = ("provider",)
