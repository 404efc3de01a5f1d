"""Pydantic I/O models of the admin API: strict types, unknown fields refused, bounded strings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ApiKeyCreate", "ApiKeyRotate", "CredentialCreate", "EndpointCopy", "EndpointCreate", "EndpointUpdate",
    "GatewayAdminAdd", "GrantCreate", "LoginIn", "ManagedModelCreate", "RestoreIn", "TenantCreate", "TokenCreate",
    "UserCreate", "UserUpdate",
]  # fmt: skip

Short = Annotated[str, Field(min_length=1, max_length=128)]
Url = Annotated[str, Field(min_length=1, max_length=1024)]
Count = Annotated[int, Field(ge=0, le=10**15)]
Price = Annotated[float, Field(ge=0, le=1e6)]
Seconds = Annotated[float, Field(gt=0, le=3600)]
# JSON has no datetime type: accept RFC 3339 strings even though the models are strict
Timestamp = Annotated[datetime, Field(strict=False)]
Cycle = Literal["daily", "weekly", "monthly"]
Category = Literal["llm", "embedding", "image"]
EndpointRoleName = Literal["ENDPOINT_ADMIN", "ENDPOINT_OPERATOR", "ENDPOINT_USER", "ENDPOINT_VIEWER"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LoginIn(_In):
    username: Short
    password: Annotated[str, Field(min_length=1, max_length=256)]
    tenant: Short | None = None


class TokenCreate(_In):
    name: Short | None = None
    expires_at: Timestamp | None = None


class TenantCreate(_In):
    name: Short
    admin_username: Short
    timezone: Short = "UTC"


class ManagedModelCreate(_In):
    name: Short
    vendor: Short = "custom"
    category: Category = "llm"
    base_url: Url
    model_version: Annotated[str, Field(min_length=1, max_length=256)]
    secret: Annotated[str, Field(min_length=1, max_length=4096)]
    description: Annotated[str, Field(max_length=2000)] | None = None


class RestoreIn(_In):
    tenant: Short


class UserCreate(_In):
    username: Short
    password: Annotated[str, Field(min_length=8, max_length=256)] | None = None
    display_name: Short | None = None


class UserUpdate(_In):
    password: Annotated[str, Field(min_length=8, max_length=256)] | None = None
    display_name: Short | None = None
    is_active: bool | None = None


class GatewayAdminAdd(_In):
    user_id: int


class _EndpointFields(_In):
    vendor: Short | None = None
    category: Category | None = None
    base_url: Url | None = None
    model_version: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    credential_id: int | None = None
    rpm: Count | None = None
    tpm: Count | None = None
    quota_tokens: Count | None = None
    quota_cycle: Cycle | None = None
    price_input_per_m: Price | None = None
    price_output_per_m: Price | None = None
    connect_timeout: Seconds | None = None
    read_timeout: Seconds | None = None
    default_output_tokens: Annotated[int, Field(ge=1, le=10**7)] | None = None
    description: Annotated[str, Field(max_length=2000)] | None = None


class EndpointCreate(_EndpointFields):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: Literal["managed", "preset", "custom"] = "custom"
    region: Short | None = None
    managed_model: Short | None = None


class EndpointUpdate(_EndpointFields):
    pass


class EndpointCopy(_In):
    name: Annotated[str, Field(min_length=1, max_length=200)]


class CredentialCreate(_In):
    name: Short
    secret: Annotated[str, Field(min_length=1, max_length=4096)]
    vendor: Short | None = None


class ApiKeyCreate(_In):
    owner: Short
    name: Short | None = None
    expires_at: Timestamp | None = None
    rpm: Count | None = None
    tpm: Count | None = None


class ApiKeyRotate(_In):
    grace_seconds: Annotated[int, Field(ge=0, le=30 * 86400)] = 0


class GrantCreate(_In):
    username: Short
    role: EndpointRoleName
    endpoints: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1, max_length=500)]
