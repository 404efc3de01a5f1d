"""Bad input on every create and edit of the admin API: a clear problem-details error (400, or
409 for a duplicate) that names the offending field, and nothing stored — the relevant list or
object, every table's row count, the configuration version and the audit log are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.conftest import Env, add_person, assert_problem, create_endpoint, create_key

HUGE = "x" * 100_000
TABLES = ("tenants", "users", "tenant_roles", "vendor_credentials", "managed_models", "endpoints", "api_keys",
          "personal_tokens", "grants", "audit_log")  # fmt: skip
PAST = (datetime.now(UTC) - timedelta(days=1)).isoformat()


@dataclass
class Fixtures:
    endpoint: str
    credential: int
    user: int
    username: str
    key: int
    managed: str


@pytest.fixture(scope="module")
def fx(env: Env) -> Fixtures:
    admin = env.admin
    cred = admin.ok("POST", "/credentials", 201, json={"name": "existing-cred", "secret": "sk-existing-secret"})
    create_endpoint(admin, env.upstream, "existing", credential_id=cred["id"])
    person = add_person(admin, "existing-user", sign_in=False)
    key = create_key(admin, person.username, name="existing-key")
    managed = {"name": "existing-managed", "base_url": env.upstream.base_url, "model_version": "fake-model",
               "secret": "sk-managed-1234"}
    admin.ok("POST", "/managed-models", 201, json=managed)
    return Fixtures("existing", cred["id"], person.id, person.username, key["id"], "existing-managed")


def _fingerprint(env: Env, views: tuple[str, ...]) -> dict[str, Any]:
    counts = env.gw.query(" UNION ALL ".join(f"SELECT '{t}', count(*) FROM {t}" for t in TABLES))
    out: dict[str, Any] = {"rows": dict(counts), "config_version": env.gw.config_version()}
    for path in views:
        body = env.admin.ok("GET", path)
        if isinstance(body, dict):
            body.pop("invocations", None)
        out[path] = body
    return out


def _ep(**fields: Any) -> dict[str, Any]:
    return {"name": "new-endpoint", "base_url": "http://127.0.0.1:9/v1", "model_version": "m", **fields}


# (id, method, path, body, status, field, views to compare); paths and bodies may use {fixtures}
Case = tuple[str, str, str, Any, int, str | None, tuple[str, ...]]
EP_LIST = ("/endpoints",)
EP_ONE = ("/endpoints/existing", "/endpoints")
CASES: list[Case] = [
    # --- create endpoint
    ("ep-name-type", "POST", "/endpoints", _ep(name=123), 400, "name", EP_LIST),
    ("ep-name-space", "POST", "/endpoints", _ep(name="has space"), 400, "name", EP_LIST),
    ("ep-name-cjk", "POST", "/endpoints", _ep(name="通义千问"), 400, "name", EP_LIST),
    ("ep-name-65", "POST", "/endpoints", _ep(name="a" * 65), 400, "name", EP_LIST),
    ("ep-name-dash", "POST", "/endpoints", _ep(name="-leading"), 400, "name", EP_LIST),
    ("ep-name-dot", "POST", "/endpoints", _ep(name=".hidden"), 400, "name", EP_LIST),
    ("ep-name-empty", "POST", "/endpoints", _ep(name=""), 400, "name", EP_LIST),
    ("ep-name-slash", "POST", "/endpoints", _ep(name="a/b"), 400, "name", EP_LIST),
    ("ep-name-huge", "POST", "/endpoints", _ep(name=HUGE), 400, "name", EP_LIST),
    ("ep-name-missing", "POST", "/endpoints", {"base_url": "http://127.0.0.1:9/v1", "model_version": "m"}, 400,
     "name", EP_LIST),
    ("ep-duplicate", "POST", "/endpoints", _ep(name="existing"), 409, "name", EP_LIST),
    ("ep-base-url-type", "POST", "/endpoints", _ep(base_url=5), 400, "base_url", EP_LIST),
    ("ep-base-url-missing", "POST", "/endpoints", {"name": "x1", "model_version": "m"}, 400, "base_url", EP_LIST),
    ("ep-base-url-relative", "POST", "/endpoints", _ep(base_url="api.openai.com/v1"), 400, "base_url", EP_LIST),
    ("ep-base-url-ftp", "POST", "/endpoints", _ep(base_url="ftp://example.com/v1"), 400, "base_url", EP_LIST),
    ("ep-base-url-metadata-ip", "POST", "/endpoints", _ep(base_url="http://169.254.169.254/latest"), 400,
     "base_url", EP_LIST),
    ("ep-base-url-link-local", "POST", "/endpoints", _ep(base_url="http://169.254.10.1:8000/v1"), 400, "base_url",
     EP_LIST),
    ("ep-base-url-metadata-name", "POST", "/endpoints", _ep(base_url="http://metadata.google.internal/v1"), 400,
     "base_url", EP_LIST),
    ("ep-base-url-ipv6-link-local", "POST", "/endpoints", _ep(base_url="http://[fe80::1]/v1"), 400, "base_url",
     EP_LIST),
    ("ep-base-url-aws-ipv6-metadata", "POST", "/endpoints", _ep(base_url="http://[fd00:ec2::254]/"), 400,
     "base_url", EP_LIST),
    ("ep-base-url-userinfo", "POST", "/endpoints", _ep(base_url="https://user:pw@api.example.com/v1"), 400,
     "base_url", EP_LIST),
    ("ep-base-url-huge", "POST", "/endpoints", _ep(base_url="https://a.example.com/" + HUGE), 400, "base_url",
     EP_LIST),
    ("ep-model-version-empty", "POST", "/endpoints", _ep(model_version=""), 400, "model_version", EP_LIST),
    ("ep-model-version-huge", "POST", "/endpoints", _ep(model_version=HUGE), 400, "model_version", EP_LIST),
    ("ep-category", "POST", "/endpoints", _ep(category="video"), 400, "category", EP_LIST),
    ("ep-rpm-string", "POST", "/endpoints", _ep(rpm="10"), 400, "rpm", EP_LIST),
    ("ep-rpm-negative", "POST", "/endpoints", _ep(rpm=-1), 400, "rpm", EP_LIST),
    ("ep-rpm-float", "POST", "/endpoints", _ep(rpm=1.5), 400, "rpm", EP_LIST),
    ("ep-rpm-bool", "POST", "/endpoints", _ep(rpm=True), 400, "rpm", EP_LIST),
    ("ep-tpm-huge", "POST", "/endpoints", _ep(tpm=10**30), 400, "tpm", EP_LIST),
    ("ep-quota-negative", "POST", "/endpoints", _ep(quota_tokens=-5), 400, "quota_tokens", EP_LIST),
    ("ep-quota-cycle", "POST", "/endpoints", _ep(quota_cycle="yearly"), 400, "quota_cycle", EP_LIST),
    ("ep-price-string", "POST", "/endpoints", _ep(price_input_per_m="cheap"), 400, "price_input_per_m", EP_LIST),
    ("ep-price-negative", "POST", "/endpoints", _ep(price_output_per_m=-1), 400, "price_output_per_m", EP_LIST),
    ("ep-timeout-zero", "POST", "/endpoints", _ep(read_timeout=0), 400, "read_timeout", EP_LIST),
    ("ep-timeout-huge", "POST", "/endpoints", _ep(connect_timeout=1e9), 400, "connect_timeout", EP_LIST),
    ("ep-unknown-credential", "POST", "/endpoints", _ep(credential_id=987654), 400, "credential_id", EP_LIST),
    ("ep-credential-type", "POST", "/endpoints", _ep(credential_id="1"), 400, "credential_id", EP_LIST),
    ("ep-description-huge", "POST", "/endpoints", _ep(description=HUGE), 400, "description", EP_LIST),
    ("ep-unknown-field", "POST", "/endpoints", _ep(colour="red"), 400, "colour", EP_LIST),
    ("ep-kind", "POST", "/endpoints", _ep(kind="borrowed"), 400, "kind", EP_LIST),
    ("ep-unknown-vendor", "POST", "/endpoints", {"name": "p1", "kind": "preset", "vendor": "acme-ai",
                                                 "model_version": "m"}, 400, "vendor", EP_LIST),
    ("ep-vendor-wrong-category", "POST", "/endpoints", {"name": "p1", "kind": "preset", "vendor": "anthropic",
                                                        "category": "embedding", "model_version": "m"}, 400,
     "category", EP_LIST),
    ("ep-vendor-image-deepseek", "POST", "/endpoints", {"name": "p1", "kind": "preset", "vendor": "deepseek",
                                                        "category": "image", "model_version": "m"}, 400,
     "category", EP_LIST),
    ("ep-unknown-region", "POST", "/endpoints", {"name": "p1", "kind": "preset", "vendor": "dashscope",
                                                 "region": "mars", "model_version": "m"}, 400, "region", EP_LIST),
    ("ep-unknown-managed-model", "POST", "/endpoints", {"name": "m1", "kind": "managed",
                                                        "managed_model": "no-such-model"}, 400, "managed_model",
     EP_LIST),
    ("ep-managed-with-base-url", "POST", "/endpoints", {"name": "m1", "kind": "managed",
                                                        "managed_model": "existing-managed",
                                                        "base_url": "http://127.0.0.1:9/v1"}, 400, "base_url",
     EP_LIST),
    ("ep-body-array", "POST", "/endpoints", [_ep()], 400, None, EP_LIST),
    # --- edit endpoint
    ("patch-rpm-string", "PATCH", "/endpoints/existing", {"rpm": "x"}, 400, "rpm", EP_ONE),
    ("patch-quota-negative", "PATCH", "/endpoints/existing", {"quota_tokens": -1}, 400, "quota_tokens", EP_ONE),
    ("patch-category", "PATCH", "/endpoints/existing", {"category": "video"}, 400, "category", EP_ONE),
    ("patch-base-url-metadata", "PATCH", "/endpoints/existing", {"base_url": "http://169.254.169.254/"}, 400,
     "base_url", EP_ONE),
    ("patch-base-url-type", "PATCH", "/endpoints/existing", {"base_url": ["http://a"]}, 400, "base_url", EP_ONE),
    ("patch-unknown-credential", "PATCH", "/endpoints/existing", {"credential_id": 987654}, 400, "credential_id",
     EP_ONE),
    ("patch-description-huge", "PATCH", "/endpoints/existing", {"description": HUGE}, 400, "description", EP_ONE),
    ("patch-model-version-empty", "PATCH", "/endpoints/existing", {"model_version": ""}, 400, "model_version",
     EP_ONE),
    ("patch-rename", "PATCH", "/endpoints/existing", {"name": "renamed"}, 400, "name", EP_ONE),
    ("patch-unknown-field", "PATCH", "/endpoints/existing", {"colour": "red"}, 400, "colour", EP_ONE),
    ("patch-timeout-negative", "PATCH", "/endpoints/existing", {"read_timeout": -1}, 400, "read_timeout", EP_ONE),
    ("patch-valid-then-invalid", "PATCH", "/endpoints/existing", {"rpm": 5, "tpm": -5}, 400, "tpm", EP_ONE),
    ("patch-managed-base-url", "PATCH", "/endpoints/existing-managed", {"base_url": "http://127.0.0.1:9/v1"},
     400, "base_url", ("/endpoints/existing-managed",)),
    # --- copy endpoint
    ("copy-name-space", "POST", "/endpoints/existing/copy", {"name": "a copy"}, 400, "name", EP_LIST),
    ("copy-name-cjk", "POST", "/endpoints/existing/copy", {"name": "副本"}, 400, "name", EP_LIST),
    ("copy-name-long", "POST", "/endpoints/existing/copy", {"name": "c" * 65}, 400, "name", EP_LIST),
    ("copy-name-dash", "POST", "/endpoints/existing/copy", {"name": "-copy"}, 400, "name", EP_LIST),
    ("copy-name-huge", "POST", "/endpoints/existing/copy", {"name": HUGE}, 400, "name", EP_LIST),
    ("copy-name-type", "POST", "/endpoints/existing/copy", {"name": 7}, 400, "name", EP_LIST),
    ("copy-duplicate", "POST", "/endpoints/existing/copy", {"name": "existing-managed"}, 409, "name", EP_LIST),
    # --- users
    ("user-name-space", "POST", "/users", {"username": "john smith"}, 400, "username", ("/users",)),
    ("user-name-cjk", "POST", "/users", {"username": "张三"}, 400, "username", ("/users",)),
    ("user-name-long", "POST", "/users", {"username": "u" * 65}, 400, "username", ("/users",)),
    ("user-name-dash", "POST", "/users", {"username": "-john"}, 400, "username", ("/users",)),
    ("user-name-empty", "POST", "/users", {"username": ""}, 400, "username", ("/users",)),
    ("user-name-huge", "POST", "/users", {"username": HUGE}, 400, "username", ("/users",)),
    ("user-name-type", "POST", "/users", {"username": 42}, 400, "username", ("/users",)),
    ("user-duplicate", "POST", "/users", {"username": "existing-user"}, 409, "username", ("/users",)),
    ("user-password-short", "POST", "/users", {"username": "newbie", "password": "short"}, 400, "password",
     ("/users",)),
    ("user-password-huge", "POST", "/users", {"username": "newbie", "password": HUGE}, 400, "password", ("/users",)),
    ("user-display-name-huge", "POST", "/users", {"username": "newbie", "display_name": HUGE}, 400, "display_name",
     ("/users",)),
    ("user-unknown-field", "POST", "/users", {"username": "newbie", "is_admin": True}, 400, "is_admin", ("/users",)),
    ("user-patch-active-type", "PATCH", "/users/{user}", {"is_active": "no"}, 400, "is_active", ("/users",)),
    ("user-patch-password-short", "PATCH", "/users/{user}", {"password": "short"}, 400, "password", ("/users",)),
    ("user-patch-display-name-huge", "PATCH", "/users/{user}", {"display_name": HUGE}, 400, "display_name",
     ("/users",)),
    ("user-patch-rename", "PATCH", "/users/{user}", {"username": "renamed"}, 400, "username", ("/users",)),
    ("user-deactivate-self", "PATCH", "/users/1", {"is_active": False}, 400, "is_active", ("/users",)),
    # --- vendor credentials
    ("cred-name-empty", "POST", "/credentials", {"name": "", "secret": "sk-1234567890"}, 400, "name",
     ("/credentials",)),
    ("cred-name-huge", "POST", "/credentials", {"name": HUGE, "secret": "sk-1234567890"}, 400, "name",
     ("/credentials",)),
    ("cred-secret-empty", "POST", "/credentials", {"name": "c1", "secret": ""}, 400, "secret", ("/credentials",)),
    ("cred-secret-blank", "POST", "/credentials", {"name": "c1", "secret": "   "}, 400, "secret", ("/credentials",)),
    ("cred-secret-huge", "POST", "/credentials", {"name": "c1", "secret": HUGE}, 400, "secret", ("/credentials",)),
    ("cred-secret-type", "POST", "/credentials", {"name": "c1", "secret": 12345678}, 400, "secret",
     ("/credentials",)),
    ("cred-duplicate", "POST", "/credentials", {"name": "existing-cred", "secret": "sk-1234567890"}, 409, "name",
     ("/credentials",)),
    # --- API keys
    ("key-unknown-owner", "POST", "/api-keys", {"owner": "nobody-here"}, 400, "owner", ("/api-keys",)),
    ("key-owner-type", "POST", "/api-keys", {"owner": 1}, 400, "owner", ("/api-keys",)),
    ("key-owner-missing", "POST", "/api-keys", {"name": "k"}, 400, "owner", ("/api-keys",)),
    ("key-rpm-negative", "POST", "/api-keys", {"owner": "existing-user", "rpm": -1}, 400, "rpm", ("/api-keys",)),
    ("key-tpm-string", "POST", "/api-keys", {"owner": "existing-user", "tpm": "many"}, 400, "tpm", ("/api-keys",)),
    ("key-expired", "POST", "/api-keys", {"owner": "existing-user", "expires_at": PAST}, 400, "expires_at",
     ("/api-keys",)),
    ("key-expiry-garbage", "POST", "/api-keys", {"owner": "existing-user", "expires_at": "tomorrow"}, 400,
     "expires_at", ("/api-keys",)),
    ("key-name-huge", "POST", "/api-keys", {"owner": "existing-user", "name": HUGE}, 400, "name", ("/api-keys",)),
    ("key-rotate-grace-negative", "POST", "/api-keys/{key}/rotate", {"grace_seconds": -1}, 400, "grace_seconds",
     ("/api-keys",)),
    ("key-rotate-grace-string", "POST", "/api-keys/{key}/rotate", {"grace_seconds": "soon"}, 400, "grace_seconds",
     ("/api-keys",)),
    ("key-rotate-grace-huge", "POST", "/api-keys/{key}/rotate", {"grace_seconds": 10**9}, 400, "grace_seconds",
     ("/api-keys",)),
    # --- grants
    ("grant-unknown-user", "POST", "/grants", {"username": "nobody-here", "role": "ENDPOINT_USER",
                                               "endpoints": ["existing"]}, 400, "username", ("/grants",)),
    ("grant-role", "POST", "/grants", {"username": "existing-user", "role": "SUPERUSER", "endpoints": ["existing"]},
     400, "role", ("/grants",)),
    ("grant-no-endpoints", "POST", "/grants", {"username": "existing-user", "role": "ENDPOINT_USER",
                                               "endpoints": []}, 400, "endpoints", ("/grants",)),
    ("grant-endpoints-type", "POST", "/grants", {"username": "existing-user", "role": "ENDPOINT_USER",
                                                 "endpoints": "existing"}, 400, "endpoints", ("/grants",)),
    ("grant-unknown-endpoint", "POST", "/grants", {"username": "existing-user", "role": "ENDPOINT_USER",
                                                   "endpoints": ["no-such-endpoint"]}, 400, "endpoints",
     ("/grants",)),
    ("grant-all-or-nothing", "POST", "/grants", {"username": "existing-user", "role": "ENDPOINT_USER",
                                                 "endpoints": ["existing", "no-such-endpoint"]}, 400, "endpoints",
     ("/grants",)),
    # --- gateway admins
    ("ga-unknown-user", "POST", "/gateway-admins", {"user_id": 987654}, 400, "user_id", ("/gateway-admins",)),
    ("ga-user-type", "POST", "/gateway-admins", {"user_id": "existing-user"}, 400, "user_id",
     ("/gateway-admins",)),
    ("ga-already", "POST", "/gateway-admins", {"user_id": 1}, 409, None, ("/gateway-admins",)),
    # --- tenant quota
    ("quota-negative", "PUT", "/quota", {"tokens": -1}, 400, "tokens", ("/quota",)),
    ("quota-type", "PUT", "/quota", {"tokens": "lots"}, 400, "tokens", ("/quota",)),
    ("quota-cycle", "PUT", "/quota", {"tokens": 5, "cycle": "yearly"}, 400, "cycle", ("/quota",)),
    # --- personal access tokens
    ("token-expired", "POST", "/me/tokens", {"expires_at": PAST}, 400, "expires_at", ()),
    ("token-name-huge", "POST", "/me/tokens", {"name": HUGE}, 400, "name", ()),
    # --- tenants (Instance Admin)
    ("tenant-name-space", "POST", "/tenants", {"name": "big corp", "admin_username": "boss"}, 400, "name",
     ("/tenants",)),
    ("tenant-name-cjk", "POST", "/tenants", {"name": "公司", "admin_username": "boss"}, 400, "name", ("/tenants",)),
    ("tenant-name-huge", "POST", "/tenants", {"name": HUGE, "admin_username": "boss"}, 400, "name", ("/tenants",)),
    ("tenant-duplicate", "POST", "/tenants", {"name": "default", "admin_username": "boss"}, 409, "name",
     ("/tenants",)),
    ("tenant-admin-name", "POST", "/tenants", {"name": "corp", "admin_username": "the boss"}, 400,
     "admin_username", ("/tenants",)),
    ("tenant-timezone", "POST", "/tenants", {"name": "corp", "admin_username": "boss", "timezone": "Mars/Olympus"},
     400, "timezone", ("/tenants",)),
    # --- managed models (Instance Admin)
    ("managed-name", "POST", "/managed-models", {"name": "a b", "base_url": "http://127.0.0.1:9/v1",
                                                 "model_version": "m", "secret": "sk-12345678"}, 400, "name",
     ("/managed-models",)),
    ("managed-metadata-url", "POST", "/managed-models", {"name": "mm", "base_url": "http://169.254.169.254/",
                                                         "model_version": "m", "secret": "sk-12345678"}, 400,
     "base_url", ("/managed-models",)),
    ("managed-no-secret", "POST", "/managed-models", {"name": "mm", "base_url": "http://127.0.0.1:9/v1",
                                                      "model_version": "m"}, 400, "secret", ("/managed-models",)),
    ("managed-category", "POST", "/managed-models", {"name": "mm", "base_url": "http://127.0.0.1:9/v1",
                                                     "model_version": "m", "secret": "sk-12345678",
                                                     "category": "video"}, 400, "category", ("/managed-models",)),
    ("managed-duplicate", "POST", "/managed-models", {"name": "existing-managed", "base_url": "http://127.0.0.1:9/v1",
                                                      "model_version": "m", "secret": "sk-12345678"}, 409, "name",
     ("/managed-models",)),
    ("managed-model-version-huge", "POST", "/managed-models", {"name": "mm", "base_url": "http://127.0.0.1:9/v1",
                                                               "model_version": HUGE, "secret": "sk-12345678"},
     400, "model_version", ("/managed-models",)),
]  # fmt: skip


def _fill(value: Any, fx: Fixtures) -> Any:
    if isinstance(value, str) and "{" in value and len(value) < 200:
        return value.format(user=fx.user, key=fx.key)
    return value


@pytest.mark.parametrize(("method", "path", "body", "status", "field", "views"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_is_refused_and_nothing_is_stored(
    env: Env, fx: Fixtures, method: str, path: str, body: Any, status: int, field: str | None, views: tuple[str, ...]
) -> None:
    path = _fill(path, fx)
    views = tuple(_fill(v, fx) for v in views)
    before = _fingerprint(env, views)
    resp = env.admin.request(method, path, json=body)
    problem = assert_problem(resp, status, field)
    assert len(problem["detail"]) < 2000, "the error echoes the huge input back"
    assert _fingerprint(env, views) == before


@pytest.mark.parametrize("body", [b"{not json", b"", b"null", b'"a string"'], ids=["broken", "empty", "null", "str"])
@pytest.mark.parametrize("path", ["/endpoints", "/users", "/api-keys", "/credentials", "/grants"])
def test_a_body_that_is_not_a_json_object(env: Env, path: str, body: bytes) -> None:
    before = _fingerprint(env, (path,))
    resp = env.admin.post(path, content=body, headers={"content-type": "application/json"})
    assert_problem(resp, 400)
    assert _fingerprint(env, (path,)) == before


def test_a_credential_in_use_cannot_be_deleted_and_the_error_names_the_endpoints(env: Env, fx: Fixtures) -> None:
    other = create_endpoint(env.admin, env.upstream, "also-uses-it", credential_id=fx.credential)
    before = _fingerprint(env, ("/credentials",))
    problem = assert_problem(env.admin.delete(f"/credentials/{fx.credential}"), 409)
    assert "existing" in problem["detail"] and other["name"] in problem["detail"]
    assert _fingerprint(env, ("/credentials",)) == before


def test_each_error_is_specific(env: Env, fx: Fixtures) -> None:
    """The message says what the rule is, not only that something is wrong."""
    name = assert_problem(env.admin.post("/endpoints", json=_ep(name="有 空格")), 400, "name")["detail"]
    assert "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$" in name
    dup = assert_problem(env.admin.post("/endpoints", json=_ep(name="existing")), 409, "name")["detail"]
    assert "existing" in dup and "already exists" in dup
    ssrf = assert_problem(env.admin.post("/endpoints", json=_ep(base_url="http://169.254.169.254/")), 400)["detail"]
    assert "169.254.169.254" in ssrf
    category = assert_problem(env.admin.post("/endpoints", json={"name": "p2", "kind": "preset", "vendor": "anthropic",
                                                                 "category": "image", "model_version": "m"}), 400)
    assert "llm" in category["detail"]  # says what the vendor does offer
    region = assert_problem(env.admin.post("/endpoints", json={"name": "p2", "kind": "preset", "vendor": "zhipu",
                                                               "region": "eu", "model_version": "m"}), 400)
    assert "cn" in region["detail"] and "intl" in region["detail"]
    expired = assert_problem(env.admin.post("/api-keys", json={"owner": fx.username, "expires_at": PAST}), 400)
    assert "future" in expired["detail"]  # the date was understood, and refused for what it is
    soon = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    key = env.admin.ok("POST", "/api-keys", 201, json={"owner": fx.username, "expires_at": soon})
    assert datetime.fromisoformat(key["expires_at"]) == datetime.fromisoformat(soon)
