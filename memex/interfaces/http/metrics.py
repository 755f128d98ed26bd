"""The server's Prometheus metrics, in a registry of each app's own (two apps in one
process, as tests make, never share counters)."""

from __future__ import annotations

import threading

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "Metrics"]

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Requests and their latency per route template and status, denials by reason, and
    the store's size."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("method", "route", "status")
        self._requests = Counter(
            "memex_http_requests",
            "HTTP requests answered, by route template and status",
            labels,
            registry=self.registry,
        )
        self._latency = Histogram(
            "memex_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer",
            labels,
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self._denials = Counter(
            "memex_http_denials",
            "Requests refused for who sent them, by reason",
            ("reason",),
            registry=self.registry,
        )
        self._store_size = Gauge(
            "memex_store_size_bytes", "The store's size on disk", registry=self.registry
        )
        # Each label set's children, looked up once: the registry's own lookup takes a lock.
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        self._lock = threading.Lock()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency."""
        key = (method, route, str(status))
        children = self._children.get(key)
        if children is None:
            with self._lock:
                children = (self._requests.labels(*key), self._latency.labels(*key))
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def denied(self, reason: str) -> None:
        """Count one request refused for who sent it."""
        self._denials.labels(reason).inc()

    def render(self, store_size: int) -> bytes:
        """The metrics in Prometheus's text format, with the store's size as of now."""
        self._store_size.set(store_size)
        return generate_latest(self.registry)
