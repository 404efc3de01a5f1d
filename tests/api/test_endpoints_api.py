"""Endpoints through the admin API: vendor presets, custom and managed endpoints, copy, edit with
change history, test connection, delete with confirmation, invocation examples, details; and the
offline API docs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.api.conftest import Api, Env, add_person, assert_problem, chat, create_endpoint, create_key, login, unique

# the vendors issue 3 lists, by (part of) their display name
VENDOR_NAMES = ("OpenAI", "Azure OpenAI", "Anthropic", "Gemini", "DashScope", "Volcengine", "DeepSeek", "Moonshot",
                "Zhipu", "Mistral", "Groq", "Together", "OpenRouter", "xAI", "Ollama", "vLLM")  # fmt: skip
CONFIG = ("kind", "vendor", "category", "base_url", "model_version", "credential_id", "rpm", "tpm", "quota_tokens",
          "quota_cycle", "price_input_per_m", "price_output_per_m", "connect_timeout", "read_timeout",
          "default_output_tokens", "description")  # fmt: skip


def _vendors(env: Env) -> list[dict[str, Any]]:
    return list(env.admin.ok("GET", "/vendors"))


def _vendor(env: Env, name_part: str) -> dict[str, Any]:
    [found] = [v for v in _vendors(env) if name_part.lower() in v["name"].lower()][:1]
    return found


def test_vendor_catalog(env: Env) -> None:
    vendors = _vendors(env)
    for name in VENDOR_NAMES:
        assert any(name.lower() in v["name"].lower() for v in vendors), name
    for v in vendors:
        assert urlsplit(v["default_base_url"]).scheme in ("http", "https"), v
        assert v["categories"] and set(v["categories"]) <= {"llm", "embedding", "image"}, v
        assert v["default_base_url"] in {r["base_url"] for r in v["regions"]}
    for name in ("DashScope", "Moonshot", "Zhipu"):  # separate China and international hosts
        regions = _vendor(env, name)["regions"]
        hosts = {urlsplit(r["base_url"]).hostname for r in regions}
        assert len(regions) >= 2 and len(hosts) == len(regions), regions
    assert_problem(Api(env.http, None).get("/vendors"), 401)


def test_create_from_a_vendor_preset_in_each_region(env: Env) -> None:
    dashscope = _vendor(env, "DashScope")
    for region in dashscope["regions"]:
        name = unique("qwen")
        body = {"name": name, "kind": "preset", "vendor": dashscope["id"], "region": region["id"],
                "model_version": "qwen-max"}
        ep = env.admin.ok("POST", "/endpoints", 201, json=body)
        assert (ep["kind"], ep["vendor"], ep["base_url"]) == ("preset", dashscope["id"], region["base_url"])
    ep = env.admin.ok("POST", "/endpoints", 201, json={"name": unique("qwen"), "kind": "preset",
                                                       "vendor": dashscope["id"], "model_version": "qwen-max",
                                                       "category": "embedding"})  # fmt: skip
    assert ep["base_url"] == dashscope["default_base_url"] and ep["category"] == "embedding"
    # a preset whose base URL points at our own deployment (e.g. vLLM on another port) works end to end
    vllm = _vendor(env, "vLLM")
    body = {"name": unique("vllm"), "kind": "preset", "vendor": vllm["id"], "base_url": env.upstream.base_url,
            "model_version": "fake-model"}
    ep = env.admin.ok("POST", "/endpoints", 201, json=body)
    assert env.admin.ok("POST", f"/endpoints/{ep['name']}/test")["success"] is True


def test_custom_endpoint_uses_its_credential_and_model_version(env: Env) -> None:
    cred = env.admin.ok("POST", "/credentials", 201, json={"name": unique("cred"), "secret": "sk-custom-vendor-key"})
    ep = create_endpoint(env.admin, env.upstream, unique("custom"), model_version="risk-v2.1",
                         credential_id=cred["id"], rpm=600, tpm=100_000, quota_tokens=10**6,
                         price_input_per_m=1.5, price_output_per_m=2.0, read_timeout=30,
                         description="our own risk model")  # fmt: skip
    assert ep["kind"] == "custom" and ep["credential_id"] == cred["id"] and ep["rpm"] == 600
    key = create_key(env.admin, "admin")["secret"]
    env.upstream.clear()
    assert chat(env.http, key, ep["name"]).status_code == 200
    sent = env.upstream.requests[-1]
    assert sent.json["model"] == "risk-v2.1"
    assert sent.headers["authorization"] == "Bearer sk-custom-vendor-key"


@pytest.fixture(scope="module")
def managed(env: Env) -> dict[str, Any]:
    """A managed model whose upstream address is spelled ``localhost`` (custom endpoints here use 127.0.0.1)."""
    base_url = env.upstream.base_url.replace("127.0.0.1", "localhost")
    return dict(env.admin.ok("POST", "/managed-models", 201, json={
        "name": "house-llm", "base_url": base_url, "model_version": "fake-model", "secret": "sk-house-secret-xyz",
        "description": "the instance's own model"}))  # fmt: skip


def _tenant_admin(env: Env) -> tuple[str, Api]:
    name = unique("org")
    out = env.admin.ok("POST", "/tenants", 201, json={"name": name, "admin_username": "boss"})
    return name, Api(env.http, login(env.http, "boss", out["admin"]["password"], name), "boss")


def test_managed_endpoint_is_provisioned_everywhere_and_hides_its_upstream(env: Env, managed: dict[str, Any]) -> None:
    tenant, boss = _tenant_admin(env)  # created after the catalog entry: provisioned at creation
    assert managed["secret"] != "sk-house-secret-xyz" and managed["secret"].endswith("-xyz")
    for api in (env.admin, boss):
        ep = api.ok("GET", "/endpoints/house-llm")
        assert (ep["kind"], ep["base_url"], ep["credential_id"]) == ("managed", None, None)
        assert ep["model_version"] == "fake-model"
        paths = ["/endpoints", "/endpoints/house-llm", "/endpoints/house-llm/history", "/endpoints/house-llm/examples",
                 "/credentials"] + (["/audit-log"] if api is boss else [])  # the Instance Admin's log shows the catalog
        seen = " ".join(api.get(p).text for p in paths)
        assert "localhost" not in seen and "sk-house-secret" not in seen
    assert_problem(boss.get("/managed-models"), 403)
    key = create_key(boss, "boss")["secret"]
    env.upstream.clear()
    assert chat(env.http, key, "house-llm").status_code == 200
    assert env.upstream.requests[-1].headers["authorization"] == "Bearer sk-house-secret-xyz"
    # a managed endpoint can be edited by the tenant (limits) but not re-pointed
    boss.ok("PATCH", "/endpoints/house-llm", json={"rpm": 1000, "description": "ours now"})
    assert_problem(boss.patch("/endpoints/house-llm", json={"base_url": env.upstream.base_url}), 400, "base_url")


def test_deleting_a_managed_endpoint_is_final_for_the_tenant(env: Env, managed: dict[str, Any]) -> None:
    tenant, boss = _tenant_admin(env)
    key = create_key(boss, "boss")["secret"]
    boss.ok("DELETE", "/endpoints/house-llm", 204, params={"confirm": "true"})
    assert_problem(boss.get("/endpoints/house-llm"), 404)
    assert "house-llm" not in {e["name"] for e in boss.ok("GET", "/endpoints")}
    assert chat(env.http, key, "house-llm").status_code == 404
    # the tenant cannot undo it ...
    assert_problem(boss.post(f"/managed-models/{managed['id']}/restore", json={"tenant": tenant}), 403)
    # ... other tenants keep theirs ...
    assert env.admin.ok("GET", "/endpoints/house-llm")["kind"] == "managed"
    # ... and the Instance Admin can restore it
    restored = env.admin.ok("POST", f"/managed-models/{managed['id']}/restore", json={"tenant": tenant})
    assert restored["name"] == "house-llm" and restored["base_url"] is None
    assert boss.ok("GET", "/endpoints/house-llm")["kind"] == "managed"
    assert chat(env.http, key, "house-llm").status_code == 200
    assert_problem(env.admin.post(f"/managed-models/{managed['id']}/restore", json={"tenant": tenant}), 404)


def test_create_a_managed_endpoint_explicitly(env: Env, managed: dict[str, Any]) -> None:
    ep = env.admin.ok("POST", "/endpoints", 201, json={"name": unique("house-copy"), "kind": "managed",
                                                       "managed_model": "house-llm"})  # fmt: skip
    assert (ep["kind"], ep["base_url"], ep["credential_id"]) == ("managed", None, None)
    key = create_key(env.admin, "admin")["secret"]
    assert chat(env.http, key, ep["name"]).status_code == 200


def test_copy_keeps_the_configuration_not_the_grants(env: Env) -> None:
    cred = env.admin.ok("POST", "/credentials", 201, json={"name": unique("cred"), "secret": "sk-copy-source-key"})
    source = create_endpoint(env.admin, env.upstream, unique("source"), credential_id=cred["id"], rpm=42, tpm=4200,
                             quota_tokens=999, quota_cycle="daily", price_input_per_m=0.5, price_output_per_m=1.25,
                             connect_timeout=3, read_timeout=9, default_output_tokens=64,
                             description="source")  # fmt: skip
    person = add_person(env.admin, sign_in=False)
    env.admin.ok("POST", "/grants", 201, json={"username": person.username, "role": "ENDPOINT_USER",
                                               "endpoints": [source["name"]]})  # fmt: skip
    name = unique("copied")
    copy = env.admin.ok("POST", f"/endpoints/{source['name']}/copy", 201, json={"name": name})
    assert copy["name"] == name and copy["id"] != source["id"]
    assert {k: copy[k] for k in CONFIG} == {k: source[k] for k in CONFIG}
    details = env.admin.ok("GET", f"/endpoints/{name}")
    assert details["authorized_users"] == []
    assert [h["action"] for h in details["history"]] == ["endpoint.create"]
    assert env.admin.ok("GET", f"/endpoints/{source['name']}")["authorized_users"][0]["username"] == person.username
    assert env.admin.ok("POST", f"/endpoints/{name}/test")["success"] is True


def test_edits_are_recorded_in_the_change_history(env: Env) -> None:
    ep = create_endpoint(env.admin, env.upstream, unique("edited"), rpm=10, description="v1")
    cred = env.admin.ok("POST", "/credentials", 201, json={"name": unique("cred"), "secret": "sk-history-secret"})
    env.admin.ok("PATCH", f"/endpoints/{ep['name']}", json={"rpm": 20})
    env.admin.ok("PATCH", f"/endpoints/{ep['name']}", json={"description": "v2", "model_version": "fake-model-2",
                                                            "credential_id": cred["id"]})  # fmt: skip
    out = env.admin.ok("PATCH", f"/endpoints/{ep['name']}", json={"quota_tokens": 5000, "quota_cycle": "weekly"})
    assert (out["quota_tokens"], out["quota_cycle"], out["rpm"]) == (5000, "weekly", 20)
    history = env.admin.ok("GET", f"/endpoints/{ep['name']}/history")
    assert [h["action"] for h in history] == ["endpoint.update"] * 3 + ["endpoint.create"]  # newest first
    assert history[2]["before"] == {"rpm": 10} and history[2]["after"] == {"rpm": 20}
    assert history[1]["before"] == {"description": "v1", "model_version": "fake-model", "credential_id": None}
    assert history[1]["after"] == {"description": "v2", "model_version": "fake-model-2", "credential_id": cred["id"]}
    assert history[0]["after"] == {"quota_tokens": 5000, "quota_cycle": "weekly"}
    assert all(h["actor"] == "admin" and h["ts"] for h in history)
    assert "sk-history-secret" not in str(history)
    assert env.admin.ok("GET", f"/endpoints/{ep['name']}")["history"] == history


def test_test_connection_success_and_failure_recorded_on_channel_test(env: Env) -> None:
    ok_ep = create_endpoint(env.admin, env.upstream, unique("probe-ok"))
    env.upstream.clear()
    result = env.admin.ok("POST", f"/endpoints/{ok_ep['name']}/test")
    assert result["success"] is True and result["error"] is None and result["upstream_status"] == 200
    assert result["latency_ms"] > 0
    sent = env.upstream.requests[-1]
    assert sent.json.get("max_tokens", sent.json.get("max_completion_tokens")) == 1  # a minimal real call
    event = env.gw.usage_for(result["request_id"])
    assert (event["channel"], event["status_code"], event["endpoint_id"]) == ("test", 200, ok_ep["id"])
    assert event["user_id"] == 1  # the admin who pressed "test"

    bad = create_endpoint(env.admin, env.upstream, unique("probe-bad"), model_version="fail-500")
    result = env.admin.ok("POST", f"/endpoints/{bad['name']}/test")
    assert result["success"] is False and result["upstream_status"] == 500
    assert "fake upstream error 500" in result["error"]  # the upstream's own words
    event = env.gw.usage_for(result["request_id"])
    assert event["channel"] == "test" and event["status_code"] >= 500 and event["upstream_status"] == 500

    emb = create_endpoint(env.admin, env.upstream, unique("probe-emb"), model_version="fake-embedding",
                          category="embedding")  # fmt: skip
    env.upstream.clear()
    assert env.admin.ok("POST", f"/endpoints/{emb['name']}/test")["success"] is True
    assert env.upstream.requests[-1].path.endswith("/embeddings")

    dead = create_endpoint(env.admin, env.upstream, unique("probe-dead"), base_url="http://127.0.0.1:9/v1")
    result = env.admin.ok("POST", f"/endpoints/{dead['name']}/test")
    assert result["success"] is False and result["error"]


def _wait_invocations(env: Env, name: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while (details := env.admin.ok("GET", f"/endpoints/{name}"))["invocations"] < count:
        assert time.monotonic() < deadline, details
        time.sleep(0.05)  # the usage writer flushes in batches
    return dict(details)


def test_delete_needs_confirmation(env: Env) -> None:
    ep = create_endpoint(env.admin, env.upstream, unique("doomed"))
    env.admin.ok("POST", f"/endpoints/{ep['name']}/test")
    _wait_invocations(env, ep["name"], 1)
    for params in ({}, {"confirm": "false"}):
        problem = assert_problem(env.admin.delete(f"/endpoints/{ep['name']}", params=params), 400, "confirm")
        assert "confirm=true" in problem["detail"] and "irreversible" in problem["detail"]
        assert env.admin.ok("GET", f"/endpoints/{ep['name']}")["id"] == ep["id"]
    env.admin.ok("DELETE", f"/endpoints/{ep['name']}", 204, params={"confirm": "true"})
    assert_problem(env.admin.get(f"/endpoints/{ep['name']}"), 404)
    assert_problem(env.admin.delete(f"/endpoints/{ep['name']}", params={"confirm": "true"}), 404)
    # the name is free again, and nothing of the old endpoint carries over (even if SQLite reuses its id)
    create_endpoint(env.admin, env.upstream, ep["name"])
    details = env.admin.ok("GET", f"/endpoints/{ep['name']}")
    assert [h["action"] for h in details["history"]] == ["endpoint.create"] and details["invocations"] == 0
    assert {e["name"]: e for e in env.admin.ok("GET", "/endpoints")}[ep["name"]]["invocations"] == 0


def test_invocation_examples_run_as_shown(env: Env, tmp_path: Any) -> None:
    ep = create_endpoint(env.admin, env.upstream, unique("example"))
    emb = create_endpoint(env.admin, env.upstream, unique("example-emb"), model_version="fake-embedding",
                          category="embedding")  # fmt: skip
    key = create_key(env.admin, "admin")["secret"]
    examples = env.admin.ok("GET", f"/endpoints/{ep['name']}/examples")
    for snippet in (examples["openai_python"], examples["curl"]):
        assert env.gw.base_url + "/v1" in snippet and ep["name"] in snippet
        assert key not in snippet and "sk-" not in snippet
    run_env = {**os.environ, "MODELGATE_API_KEY": key}
    script = tmp_path / "example.py"
    script.write_text(examples["openai_python"])
    out = subprocess.run([sys.executable, str(script)], env=run_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "echo: Hello!"
    if shutil.which("curl"):
        out = subprocess.run(["bash", "-c", examples["curl"]], env=run_env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["choices"][0]["message"]["content"] == "echo: Hello!"
    emb_examples = env.admin.ok("GET", f"/endpoints/{emb['name']}/examples")
    assert "/v1/embeddings" in emb_examples["curl"] and "embeddings.create" in emb_examples["openai_python"]
    script.write_text(emb_examples["openai_python"])
    out = subprocess.run([sys.executable, str(script)], env=run_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_details_show_invocations_and_authorized_users(env: Env) -> None:
    ep = create_endpoint(env.admin, env.upstream, unique("detailed"), model_version="fake-model")
    details = env.admin.ok("GET", f"/endpoints/{ep['name']}")
    assert (details["invocations"], details["authorized_users"], details["model_version"]) == (0, [], "fake-model")
    viewer, user = add_person(env.admin, sign_in=False), add_person(env.admin, sign_in=False)
    env.admin.ok("POST", "/grants", 201, json={"username": viewer.username, "role": "ENDPOINT_VIEWER",
                                               "endpoints": [ep["name"]]})  # fmt: skip
    env.admin.ok("POST", "/grants", 201, json={"username": user.username, "role": "ENDPOINT_USER",
                                               "endpoints": [ep["name"]]})  # fmt: skip
    key = create_key(env.admin, user.username)["secret"]
    for _ in range(3):
        assert chat(env.http, key, ep["name"]).status_code == 200
    env.admin.ok("POST", f"/endpoints/{ep['name']}/test")
    details = _wait_invocations(env, ep["name"], 4)
    assert details["invocations"] == 4
    assert {(u["username"], u["role"]) for u in details["authorized_users"]} == {
        (viewer.username, "ENDPOINT_VIEWER"), (user.username, "ENDPOINT_USER")}
    assert {k: details[k] for k in CONFIG} == {k: ep[k] for k in CONFIG}
    listed = {e["name"]: e for e in env.admin.ok("GET", "/endpoints")}
    assert listed[ep["name"]]["invocations"] == 4


def test_offline_docs_and_openapi(env: Env) -> None:
    page = env.http.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert not re.search(r"https?://", html), "the docs page must not load anything from the internet"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        resp = env.http.get(asset)
        assert resp.status_code == 200 and len(resp.content) > 1000, asset
    assert "/api/v1/openapi.json" in html
    spec = env.http.get("/api/v1/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in ("/auth/login", "/me/tokens", "/tenants", "/managed-models", "/users/{user_id}", "/gateway-admins",
                 "/gateway-admins/{user_id}", "/vendors", "/endpoints", "/endpoints/{name}", "/endpoints/{name}/copy",
                 "/endpoints/{name}/test", "/endpoints/{name}/history", "/endpoints/{name}/examples", "/credentials",
                 "/credentials/{credential_id}", "/api-keys", "/api-keys/{key_id}/rotate", "/grants",
                 "/grants/{grant_id}", "/audit-log"):  # fmt: skip
        assert path in paths, path
