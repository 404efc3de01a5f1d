"""The README's quick start, end to end: CLI-created endpoint and key, the openai SDK as client."""

from __future__ import annotations

import openai
import pytest

from tests import contracts
from tests.fakes.upstream import FakeUpstream
from tests.harness import GatewayProcess


@pytest.fixture(scope="module")
def llm(gateway: GatewayProcess, upstream: FakeUpstream) -> str:
    gateway.create_endpoint("qs-llm", upstream.base_url, model_version="vendor-model-x")
    return "qs-llm"


def test_stream_through_gateway_records_usage(gateway: GatewayProcess, upstream: FakeUpstream, admin_key: str,
                                             llm: str) -> None:  # fmt: skip
    client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=admin_key)
    upstream.clear()
    stream = client.chat.completions.with_raw_response.create(
        model=llm, messages=[{"role": "user", "content": "say three words"}], stream=True
    )
    request_id = stream.headers["x-request-id"]
    chunks = list(stream.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: say three words"
    assert all(c.model == llm for c in chunks)
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    sent = upstream.requests[-1]
    assert sent.json["model"] == "vendor-model-x"
    assert sent.json["stream_options"] == {"include_usage": True}
    assert sent.headers["authorization"] == "Bearer sk-vendor-secret"
    event = gateway.usage_for(request_id)
    assert (event["input_tokens"], event["output_tokens"], event["status_code"]) == (3, 4, 200)
    assert not event["is_estimated"] and event["is_stream"]
    assert event["ttft_ms"] is not None and event["ttft_ms"] <= event["latency_ms"]


def test_non_stream_validates_against_openai_contract(gateway: GatewayProcess, admin_key: str, llm: str) -> None:
    client = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key=admin_key)
    raw = client.chat.completions.with_raw_response.create(
        model=f"endpoint:{llm}", messages=[{"role": "user", "content": "hi there"}]
    )
    body = raw.http_response.json()
    contracts.validate("CreateChatCompletionResponse", body)
    assert body["model"] == llm
    assert body["usage"]["prompt_tokens"] == 2
