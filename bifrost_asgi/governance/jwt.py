"""Signed-token authentication (seed 003's deployments): ``Authorization: Bearer <JWT>``.

A virtual-key token carries the key's *id* in a claim (default ``vk_id``) and stands for that key; an
admin token (claim ``admin: true``) grants the management API. Tokens are verified with PyJWT — an HS256
shared secret or an RS256 public key — including expiry, and audience/issuer when configured. The token
never grants more than its key: the key must still exist and be active.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bifrost_asgi.errors import invalid_token

__all__ = ["JWTConfig", "TokenClaims", "TokenVerifier", "looks_like_jwt"]


class JWTConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    algorithm: Literal["HS256", "RS256"] = "HS256"
    secret: SecretStr | None = None  # HS256
    public_key: str | None = None  # RS256, PEM
    virtual_key_claim: str = "vk_id"
    admin_claim: str = "admin"
    audience: str | None = None
    issuer: str | None = None
    leeway_seconds: float = Field(default=30.0, ge=0)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    virtual_key_id: str | None
    is_admin: bool
    subject: str | None


def looks_like_jwt(value: str) -> bool:
    return value.count(".") == 2 and not value.startswith("sk-")


class TokenVerifier:
    """Verifies tokens; built once per gateway (the key material is parsed once)."""

    def __init__(self, config: JWTConfig) -> None:
        try:
            import jwt
        except ImportError:  # pragma: no cover - depends on the install
            from bifrost_asgi.config import ConfigError

            raise ConfigError("governance.jwt_auth needs PyJWT: pip install 'bifrost-asgi[jwt]'") from None
        self._jwt = jwt
        self.config = config
        if config.algorithm == "HS256":
            if config.secret is None or not config.secret.get_secret_value():
                raise ValueError("governance.jwt_auth.secret is required for HS256")
            self._key: Any = config.secret.get_secret_value()
        else:
            if not config.public_key:
                raise ValueError("governance.jwt_auth.public_key is required for RS256")
            self._key = config.public_key

    def verify(self, token: str) -> TokenClaims:
        options: Any = {"require": ["exp"]}  # a token without an expiry would be valid forever
        try:
            claims = self._jwt.decode(
                token,
                self._key,
                algorithms=[self.config.algorithm],  # never accept the token's own choice of algorithm
                audience=self.config.audience,
                issuer=self.config.issuer,
                leeway=self.config.leeway_seconds,
                options=options,
            )
        except self._jwt.ExpiredSignatureError:
            raise invalid_token("the token has expired") from None
        except self._jwt.InvalidTokenError as exc:
            raise invalid_token(f"invalid token: {type(exc).__name__}") from None
        vk = claims.get(self.config.virtual_key_claim)
        subject = claims.get("sub")
        return TokenClaims(
            str(vk) if vk not in (None, "") else None,
            claims.get(self.config.admin_claim) is True,
            str(subject) if subject is not None else None,
        )
