"""Prometheus metrics. Request metrics are fed from usage-event batches by the flusher, not on
the request path, so they cost the hot path nothing (they lag by at most one flush interval).

The request series are plain dictionaries folded per batch and exposed by a custom collector:
going through prometheus_client's labelled Counter/Histogram objects cost ~20 µs per event
(a ``labels()`` lookup and a lock per series touched), a tenth of a whole request's budget.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Gauge, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from modelgate.usage.events import UsageEvent
from modelgate.usage.rollup import error_class

__all__ = ["Metrics", "RequestCounters"]

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BOUNDS_MS = tuple(s * 1000.0 for s in _SECONDS)
_LE = tuple(str(float(s)) for s in _SECONDS) + ("+Inf",)
_DENIED = frozenset({"rate_limited", "quota_exceeded"})


class _Histogram:
    __slots__ = ("buckets", "sum_ms")

    def __init__(self) -> None:
        self.buckets = [0] * (len(_BOUNDS_MS) + 1)  # per bucket, not cumulative
        self.sum_ms = 0.0

    def observe(self, ms: float) -> None:
        self.buckets[bisect_left(_BOUNDS_MS, ms)] += 1
        self.sum_ms += ms

    def cumulative(self) -> list[tuple[str, float]]:
        out, total = [], 0
        for le, n in zip(_LE, self.buckets, strict=True):
            total += n
            out.append((le, float(total)))
        return out


class RequestCounters(Collector):
    """The request series, folded from usage events (monotonic for the process's lifetime)."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, str], int] = {}
        self.errors: dict[str, int] = {}
        self.denied = 0
        self.latency: dict[str, _Histogram] = {}
        self.ttft = _Histogram()
        self.ttft_count = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.upstream: dict[int, int] = {}
        self.written = 0

    def observe(self, events: Iterable[UsageEvent]) -> None:
        requests, errors, latency, upstream = self.requests, self.errors, self.latency, self.upstream
        n = 0
        for e in events:
            n += 1
            key = (e.route, e.channel, str(e.status_code))
            requests[key] = requests.get(key, 0) + 1
            if e.error_type is not None:
                err = error_class(e.error_type)
                errors[err] = errors.get(err, 0) + 1  # type: ignore[index]
                if err in _DENIED:
                    self.denied += 1
            hist = latency.get(e.route)
            if hist is None:
                hist = latency[e.route] = _Histogram()
            hist.observe(e.latency_ms)
            if e.ttft_ms is not None:
                self.ttft.observe(e.ttft_ms)
                self.ttft_count += 1
            self.tokens_in += e.input_tokens
            self.tokens_out += e.output_tokens
            if e.upstream_status is not None:
                upstream[e.upstream_status] = upstream.get(e.upstream_status, 0) + 1
        self.written += n

    def collect(self) -> Iterator[Metric]:
        # copies first: a flush may fold a batch while a scrape is being rendered
        c = CounterMetricFamily("modelgate_requests", "Data-plane requests.", labels=["route", "channel", "status"])
        for labels, v in list(self.requests.items()):
            c.add_metric(list(labels), v)
        yield c
        c = CounterMetricFamily("modelgate_errors", "Failed requests by error type.", labels=["type"])
        for err, v in list(self.errors.items()):
            c.add_metric([err], v)
        yield c
        c = CounterMetricFamily("modelgate_limiter_decisions", "Admission decisions.", labels=["decision"])
        c.add_metric(["denied"], self.denied)
        yield c
        h = HistogramMetricFamily("modelgate_request_duration_seconds", "End-to-end latency.", labels=["route"])
        for route, hist in list(self.latency.items()):
            h.add_metric([route], hist.cumulative(), hist.sum_ms / 1000.0)
        yield h
        h = HistogramMetricFamily("modelgate_time_to_first_token_seconds", "Time to first token of streams.")
        h.add_metric([], self.ttft.cumulative(), self.ttft.sum_ms / 1000.0)
        yield h
        c = CounterMetricFamily("modelgate_tokens", "Tokens by direction.", labels=["direction"])
        c.add_metric(["input"], self.tokens_in)
        c.add_metric(["output"], self.tokens_out)
        yield c
        c = CounterMetricFamily("modelgate_upstream_responses", "Upstream HTTP status codes.", labels=["code"])
        for code, v in list(self.upstream.items()):
            c.add_metric([str(code)], v)
        yield c
        yield CounterMetricFamily("modelgate_usage_events_written", "Usage events stored.", value=self.written)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # the *_created series only add noise to every scrape
        self.registry = CollectorRegistry()
        r = self.registry
        self.counters = RequestCounters()
        r.register(self.counters)
        self.buffer = Gauge("modelgate_usage_buffer_depth", "Usage events waiting to be written.", registry=r)
        self.snapshot_age = Gauge("modelgate_snapshot_age_seconds", "Age of the configuration snapshot.", registry=r)
        self.limiter_up = Gauge("modelgate_limiter_backend_up", "1 when the shared limiter store answers.", registry=r)

    def observe(self, events: Iterable[UsageEvent]) -> None:
        self.counters.observe(events)

    def refresh(self, buffer_depth: int, snapshot_age: float, limiter_up: bool) -> None:
        self.buffer.set(buffer_depth)
        self.snapshot_age.set(snapshot_age)
        self.limiter_up.set(1 if limiter_up else 0)
