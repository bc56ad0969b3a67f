"""`UserDirectory`: the core's `OwnerDirectory` over Django's user model.

A key works only while its owner exists and is active: deactivating a user (``is_active = False``)
blocks every key they own within the gateway's short owner cache (2 s), with no change to the keys.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from ._db import run, user_pk

__all__ = ["UserDirectory"]


def _is_active(owner: str) -> bool:
    pk = user_pk(owner)
    if pk is None:
        return False
    users = get_user_model()._default_manager.filter(pk=pk)
    # Custom user models may drop the field (AbstractBaseUser only has a class attribute): existing is enough.
    if any(field.name == "is_active" for field in get_user_model()._meta.concrete_fields):
        users = users.filter(is_active=True)
    return users.exists()


class UserDirectory:
    """Is a key's owner still an active user of this site?

    >>> app = create_app(config, owner_directory=UserDirectory())
    >>> await UserDirectory().is_active("42")
    True
    """

    async def is_active(self, owner: str) -> bool:
        return await run(_is_active, owner)
