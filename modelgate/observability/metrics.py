"""Prometheus metrics. Request metrics are fed from usage-event batches by the flusher, not on
the request path, so they cost the hot path nothing (they lag by at most one flush interval).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

from modelgate.usage.events import UsageEvent
from modelgate.usage.rollup import error_class

__all__ = ["Metrics"]

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only add noise to every scrape
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("modelgate_requests", "Data-plane requests.", ["route", "channel", "status"], registry=r)
        self.errors = Counter("modelgate_errors", "Failed requests by error type.", ["type"], registry=r)
        self.latency = Histogram("modelgate_request_duration_seconds", "End-to-end latency.", ["route"],
                                 buckets=_SECONDS, registry=r)  # fmt: skip
        self.ttft = Histogram("modelgate_time_to_first_token_seconds", "Time to first token of streams.",
                              buckets=_SECONDS, registry=r)  # fmt: skip
        self.tokens = Counter("modelgate_tokens", "Tokens by direction.", ["direction"], registry=r)
        self.upstream = Counter("modelgate_upstream_responses", "Upstream HTTP status codes.", ["code"], registry=r)
        self.limiter = Counter("modelgate_limiter_decisions", "Admission decisions.", ["decision"], registry=r)
        self.buffer = Gauge("modelgate_usage_buffer_depth", "Usage events waiting to be written.", registry=r)
        self.snapshot_age = Gauge("modelgate_snapshot_age_seconds", "Age of the configuration snapshot.", registry=r)
        self.limiter_up = Gauge("modelgate_limiter_backend_up", "1 when the shared limiter store answers.", registry=r)
        self.usage_written = Counter("modelgate_usage_events_written", "Usage events stored.", registry=r)

    def observe(self, events: Iterable[UsageEvent]) -> None:
        for e in events:
            self.requests.labels(e.route, e.channel, str(e.status_code)).inc()
            err = error_class(e.error_type)
            if err is not None:
                self.errors.labels(err).inc()
            if err in ("rate_limited", "quota_exceeded"):
                self.limiter.labels("denied").inc()
            self.latency.labels(e.route).observe(e.latency_ms / 1000.0)
            if e.ttft_ms is not None:
                self.ttft.observe(e.ttft_ms / 1000.0)
            if e.input_tokens:
                self.tokens.labels("input").inc(e.input_tokens)
            if e.output_tokens:
                self.tokens.labels("output").inc(e.output_tokens)
            if e.upstream_status is not None:
                self.upstream.labels(str(e.upstream_status)).inc()

    def refresh(self, buffer_depth: int, snapshot_age: float, limiter_up: bool) -> None:
        self.buffer.set(buffer_depth)
        self.snapshot_age.set(snapshot_age)
        self.limiter_up.set(1 if limiter_up else 0)

