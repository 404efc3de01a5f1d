"""The one pooled upstream client, and the mapping of upstream failures to gateway errors.

Only endpoint configuration decides where a request goes and with which credential: the
client's headers are never forwarded.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp.payload import BytesPayload

from modelgate.errors import BadRequest, GatewayError, RateLimited, UpstreamError, UpstreamTimeout
from modelgate.runtime.snapshot import EndpointEntry

__all__ = ["UpstreamClient", "upstream_failure"]


class UpstreamClient:
    def __init__(self, pool_size: int) -> None:
        self._pool_size = pool_size
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float, float], aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300, enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",), raise_for_status=False
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _timeout(self, ep: EndpointEntry) -> aiohttp.ClientTimeout:
        k = (ep.connect_timeout, ep.read_timeout)
        t = self._timeouts.get(k)
        if t is None:
            t = self._timeouts[k] = aiohttp.ClientTimeout(total=None, sock_connect=k[0], sock_read=k[1])
        return t

    async def send(self, ep: EndpointEntry, url: str, body: bytes) -> aiohttp.ClientResponse:
        """POST and return the response with headers read; the caller reads or relays the body."""
        assert self._session is not None, "UpstreamClient.start() was not awaited"
        try:
            # a ready payload: aiohttp would otherwise look the body's type up in its registry each time
            payload = BytesPayload(body, content_type="application/json")
            return await self._session.post(url, data=payload, headers=ep.upstream_headers, timeout=self._timeout(ep))
        except TimeoutError as exc:
            raise UpstreamTimeout(f"The upstream of endpoint '{ep.name}' did not answer in time.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"Could not reach the upstream of endpoint '{ep.name}': {type(exc).__name__}."
            ) from exc

    async def read(self, ep: EndpointEntry, resp: aiohttp.ClientResponse) -> bytes:
        try:
            return await resp.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"The upstream of endpoint '{ep.name}' did not answer in time.") from exc
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as exc:
            raise UpstreamError(f"The upstream of endpoint '{ep.name}' closed the connection early.") from exc
        finally:
            resp.release()


def upstream_failure(ep: EndpointEntry, status: int, message: str, retry_after: str | None) -> GatewayError:
    """Map an upstream error status to what the client sees (DESIGN.md §4)."""
    text = f"Upstream of endpoint '{ep.name}' answered {status}: {message}"
    if status == 429:
        headers = {"retry-after": retry_after} if retry_after else None
        return RateLimited(text, code="upstream_rate_limited", headers=headers, error_type="upstream_4xx")
    if status in (401, 403):
        # the gateway's own vendor credential was refused: not the client's fault
        return UpstreamError(text, code="upstream_auth_failed", error_type="upstream_4xx")
    if status in (408, 504):
        return UpstreamTimeout(text)
    if 400 <= status < 500:
        return BadRequest(text, code="upstream_bad_request", status=400 if status != 404 else 400,
                          error_type="upstream_4xx")  # fmt: skip
    return UpstreamError(text, error_type="upstream_5xx")
