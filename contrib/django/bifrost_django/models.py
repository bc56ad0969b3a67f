"""Virtual keys, teams, customers, provider-level limits, budget/rate-limit counters and usage logs, in the
host's database.

Keys follow djangorestframework-api-key: a row holds a short lookup ``prefix`` and a SHA-256
``hashed_key``, never the plaintext, which is shown once when the key is created; revocation is
permanent; expiry is a nullable datetime; the owner is ``settings.AUTH_USER_MODEL``. Provider rules,
budgets and rate limits are JSON in the shapes of the core's pydantic models, which validate them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from bifrost_asgi.governance import VK_PREFIX, Budget, ProviderRule, RateLimit, generate_key, unique_windows

from . import signals

__all__ = ["Counter", "Customer", "ProviderGovernance", "Team", "UsageLog", "VirtualKey"]

_RULES = TypeAdapter(tuple[ProviderRule, ...])
_BUDGETS = TypeAdapter(tuple[Budget, ...])
_RATE_LIMIT = TypeAdapter(RateLimit | None)


def new_id() -> str:
    """Record ids are opaque strings, as in the core (``uuid4().hex``)."""
    return uuid.uuid4().hex


def _validate(adapter: TypeAdapter[Any], value: Any, field: str) -> Any:
    try:
        return adapter.validate_python(value)
    except PydanticValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValidationError({field: f"{where}: {first['msg']}" if where else first["msg"]}) from None


def _validate_budgets(value: Any, field: str) -> None:
    """Valid budgets, one per reset window (the window names a budget's counter)."""
    try:
        unique_windows(_validate(_BUDGETS, value, field))
    except ValueError as exc:
        raise ValidationError({field: str(exc)}) from None


_RATE_LIMIT_HELP = 'e.g. {"request_max_limit": 60, "request_reset_duration": "1m"}'


class Customer(models.Model):
    """The top of Bifrost's hierarchy: a customer's budgets apply to its teams' keys."""

    id: models.CharField[str, str] = models.CharField(primary_key=True, max_length=64, default=new_id)
    name: models.CharField[str, str] = models.CharField(max_length=200, blank=True)
    budgets: models.JSONField[Any, Any] = models.JSONField(
        default=list, blank=True, help_text='e.g. [{"max_limit": 100, "reset_duration": "1M"}]'
    )
    rate_limit: models.JSONField[Any, Any] = models.JSONField(
        null=True, blank=True, help_text=_RATE_LIMIT_HELP
    )
    created: models.DateTimeField[datetime, datetime] = models.DateTimeField(
        default=timezone.now, editable=False
    )

    class Meta:
        ordering = ("name", "id")

    def __str__(self) -> str:
        return self.name or self.id

    def clean(self) -> None:
        _validate_budgets(self.budgets, "budgets")
        _validate(_RATE_LIMIT, self.rate_limit, "rate_limit")


class Team(models.Model):
    """A group of keys sharing budgets, optionally under a customer."""

    id: models.CharField[str, str] = models.CharField(primary_key=True, max_length=64, default=new_id)
    name: models.CharField[str, str] = models.CharField(max_length=200, blank=True)
    customer: models.ForeignKey[Customer | None, Customer | None] = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="teams"
    )
    budgets: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    rate_limit: models.JSONField[Any, Any] = models.JSONField(
        null=True, blank=True, help_text=_RATE_LIMIT_HELP
    )
    created: models.DateTimeField[datetime, datetime] = models.DateTimeField(
        default=timezone.now, editable=False
    )
    customer_id: str | None  # the foreign key's column, for the type checker

    class Meta:
        ordering = ("name", "id")

    def __str__(self) -> str:
        return self.name or self.id

    def clean(self) -> None:
        _validate_budgets(self.budgets, "budgets")
        _validate(_RATE_LIMIT, self.rate_limit, "rate_limit")


class ProviderGovernance(models.Model):
    """Budgets and a rate limit on a whole provider, whoever calls it (Bifrost's provider governance)."""

    provider: models.CharField[str, str] = models.CharField(primary_key=True, max_length=64)
    budgets: models.JSONField[Any, Any] = models.JSONField(
        default=list, blank=True, help_text='e.g. [{"max_limit": 500, "reset_duration": "1M"}]'
    )
    rate_limit: models.JSONField[Any, Any] = models.JSONField(
        null=True, blank=True, help_text=_RATE_LIMIT_HELP
    )

    class Meta:
        ordering = ("provider",)
        verbose_name = "provider limit"

    def __str__(self) -> str:
        return self.provider

    def clean(self) -> None:
        _validate_budgets(self.budgets, "budgets")
        _validate(_RATE_LIMIT, self.rate_limit, "rate_limit")


class VirtualKeyManager(models.Manager["VirtualKey"]):
    def create_key(self, **fields: Any) -> tuple[VirtualKey, str]:
        """Create a key and return it with its plaintext, which exists only in this return value.

        >>> key, value = VirtualKey.objects.create_key(name="ci", owner=user)
        """
        generated = generate_key()
        key = self.model(prefix=generated.prefix, hashed_key=generated.hashed, **fields)
        key.full_clean()
        key.save(force_insert=True, using=self._db)
        return key, generated.value


class VirtualKey(models.Model):
    """A virtual key: who owns it, what it may call, and what it may spend.

    >>> key, value = VirtualKey.objects.create_key(name="notebook", owner=request.user)
    >>> value[:6]
    'sk-bf-'
    """

    id: models.CharField[str, str] = models.CharField(
        primary_key=True, max_length=64, default=new_id, editable=False
    )
    owner: models.ForeignKey[AbstractBaseUser | None, AbstractBaseUser | None] = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="bifrost_virtual_keys",
    )
    name: models.CharField[str, str] = models.CharField(max_length=200)
    description: models.TextField[str, str] = models.TextField(blank=True)
    # The lookup prefix is shown in lists; the hash is what authenticates. Neither reveals the key.
    prefix: models.CharField[str, str] = models.CharField(max_length=16, db_index=True, editable=False)
    hashed_key: models.CharField[str, str] = models.CharField(max_length=128, editable=False)
    is_active: models.BooleanField[bool, bool] = models.BooleanField(default=True)
    revoked_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="Revocation is permanent: a revoked key never works again.",
    )
    expires_at: models.DateTimeField[datetime | None, datetime | None] = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the key never expires."
    )
    created: models.DateTimeField[datetime, datetime] = models.DateTimeField(
        default=timezone.now, editable=False
    )
    allow_all_providers: models.BooleanField[bool, bool] = models.BooleanField(default=False)
    provider_configs: models.JSONField[Any, Any] = models.JSONField(
        default=list,
        blank=True,
        help_text='e.g. [{"provider": "openai", "allowed_models": ["gpt-4o-mini"]}]',
    )
    budgets: models.JSONField[Any, Any] = models.JSONField(
        default=list, blank=True, help_text='e.g. [{"max_limit": 10, "reset_duration": "1M"}]'
    )
    rate_limit: models.JSONField[Any, Any] = models.JSONField(
        null=True, blank=True, help_text=_RATE_LIMIT_HELP
    )
    team: models.ForeignKey[Team | None, Team | None] = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="virtual_keys"
    )
    customer: models.ForeignKey[Customer | None, Customer | None] = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="virtual_keys"
    )

    objects: ClassVar[VirtualKeyManager] = VirtualKeyManager()
    # The foreign keys' columns, for the type checker. The owner's type is the site's user model's pk.
    owner_id: Any
    team_id: str | None
    customer_id: str | None

    class Meta:
        ordering = ("-created", "id")
        verbose_name = "virtual key"

    def __str__(self) -> str:
        return f"{self.name} ({self.hint})"

    @property
    def hint(self) -> str:
        return f"{VK_PREFIX}{self.prefix}…"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def clean(self) -> None:
        for rule in _validate(_RULES, self.provider_configs, "provider_configs"):
            try:
                unique_windows(rule.budgets)
            except ValueError as exc:
                raise ValidationError({"provider_configs": f"{rule.provider}: {exc}"}) from None
        _validate_budgets(self.budgets, "budgets")
        _validate(_RATE_LIMIT, self.rate_limit, "rate_limit")
        if self.team_id and self.customer_id:
            raise ValidationError("A key belongs to a team or to a customer, not both.")

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
        self.save(update_fields=["revoked_at", "is_active"])

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Revocation is permanent, whatever path the change comes through (admin, API, shell): a stored
        # revocation time is never cleared, and a revoked key is never active again.
        adding, was_revoked = self._state.adding, self.revoked_at is not None
        if not adding:
            stored = type(self)._default_manager.filter(pk=self.pk).values_list("revoked_at", flat=True)
            previous = stored.first()  # one query: a queryset's first() is not cached
            was_revoked = previous is not None
            self.revoked_at = self.revoked_at or previous
        if self.revoked_at is not None:
            self.is_active = False
        super().save(*args, **kwargs)
        if adding:
            signals.key_created.send(sender=type(self), key=self)
        if self.revoked_at is not None and not was_revoked:
            signals.key_revoked.send(sender=type(self), key=self)


class Counter(models.Model):
    """One budget or rate-limit window (``Limit.key`` in the core), locked row by row on admission."""

    key: models.CharField[str, str] = models.CharField(primary_key=True, max_length=255)
    used: models.FloatField[float, float] = models.FloatField(default=0.0)
    reserved: models.FloatField[float, float] = models.FloatField(default=0.0)
    start: models.FloatField[float, float] = models.FloatField(
        default=0.0
    )  # unix seconds, as the core's CounterState
    end: models.FloatField[float, float] = models.FloatField(default=0.0)
    # Reservations by admission slot (the core's CounterState.held), so unsettled ones expire.
    held: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ("key",)

    def __str__(self) -> str:
        return self.key


class UsageLog(models.Model):
    """One gateway request, as the core's ``LogRecord``: tokens, cost and outcome, never content."""

    request_id: models.CharField[str, str] = models.CharField(max_length=128, db_index=True)
    timestamp: models.DateTimeField[datetime, datetime] = models.DateTimeField(db_index=True)
    object: models.CharField[str, str] = models.CharField(max_length=64)
    provider: models.CharField[str | None, str | None] = models.CharField(
        max_length=64, null=True, blank=True
    )
    model: models.CharField[str | None, str | None] = models.CharField(max_length=200, null=True, blank=True)
    requested_model: models.CharField[str | None, str | None] = models.CharField(
        max_length=255, null=True, blank=True
    )
    owner: models.ForeignKey[AbstractBaseUser | None, AbstractBaseUser | None] = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    virtual_key: models.ForeignKey[VirtualKey | None, VirtualKey | None] = models.ForeignKey(
        VirtualKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="usage_logs"
    )
    virtual_key_name: models.CharField[str | None, str | None] = models.CharField(
        max_length=200, null=True, blank=True
    )
    team_id: models.CharField[str | None, str | None] = models.CharField(max_length=64, null=True, blank=True)
    customer_id: models.CharField[str | None, str | None] = models.CharField(
        max_length=64, null=True, blank=True
    )
    selected_key_name: models.CharField[str | None, str | None] = models.CharField(
        max_length=200, null=True, blank=True
    )
    status: models.CharField[str, str] = models.CharField(max_length=16, default="success")
    status_code: models.IntegerField[int, int] = models.IntegerField(default=200)
    error_type: models.CharField[str | None, str | None] = models.CharField(
        max_length=100, null=True, blank=True
    )
    error_message: models.TextField[str | None, str | None] = models.TextField(null=True, blank=True)
    stream: models.BooleanField[bool, bool] = models.BooleanField(default=False)
    fallback_index: models.IntegerField[int, int] = models.IntegerField(default=0)
    input_tokens: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    output_tokens: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    cached_read_tokens: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    cached_write_tokens: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    reasoning_tokens: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    total_tokens: models.BigIntegerField[int, int] = models.BigIntegerField(default=0)
    cost: models.FloatField[float | None, float | None] = models.FloatField(null=True, blank=True)
    latency: models.IntegerField[int, int] = models.IntegerField(default=0, help_text="milliseconds")
    usage_estimated: models.BooleanField[bool, bool] = models.BooleanField(default=False)
    content: models.TextField[str | None, str | None] = models.TextField(
        null=True, blank=True, help_text="The prompt and answer, where content logging is on (JSON)."
    )
    cache_hit: models.CharField[str | None, str | None] = models.CharField(
        max_length=16, null=True, blank=True, help_text="direct or semantic: answered by the response cache."
    )
    owner_id: Any  # the foreign keys' columns, for the type checker
    virtual_key_id: str | None

    class Meta:
        ordering = ("-timestamp", "-id")
        verbose_name = "usage log"

    def __str__(self) -> str:
        return f"{self.object} {self.provider}/{self.model} {self.status_code}"
