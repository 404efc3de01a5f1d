"""The data plane's side of SQL usage attribution: ``x-modelgate-channel`` declares the channel,
and only the channels a client may claim are accepted."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from tests.harness import GatewayProcess


@pytest.mark.parametrize(("declared", "recorded"), [("sql", "sql"), ("api", "api"), ("test", "api"), (None, "api")])
def test_declared_channel_is_recorded_when_allowed(gateway: GatewayProcess, admin_key: str, llm: tuple[str, str],
                                                   declared: str | None, recorded: str) -> None:  # fmt: skip
    headers = {"Authorization": f"Bearer {admin_key}"}
    if declared is not None:
        headers["x-modelgate-channel"] = declared
    resp = httpx.post(gateway.base_url + "/v1/chat/completions", headers=headers, timeout=30,
                      json={"model": llm[0], "messages": [{"role": "user", "content": "which channel"}]})  # fmt: skip
    assert resp.status_code == 200
    assert gateway.usage_for(resp.headers["x-request-id"])["channel"] == recorded
