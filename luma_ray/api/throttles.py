"""What one ingress replica lets one key or one tenant do at once: a request rate per API key
(a token bucket) and a number of open event streams per tenant.

Both are counted per replica, in memory: with N replicas behind a load balancer a key may
make up to N times the rate. The values come from ``ApiSettings.limits``
(:class:`~luma_ray.config.IngressLimits`). Time is an argument; nothing here reads a clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from luma_ray.errors import StreamLimited

__all__ = ["KeyRates", "StreamSlots"]

_MAX_BUCKETS = 100_000


class KeyRates:
    """A token bucket per key: ``rate_per_s`` requests a second on average, up to ``burst``
    at once. ``rate_per_s=None`` lets every request through.

    Only authenticated keys get a bucket, so their number is bounded by the key store; past
    ``max_buckets`` the full ones (idle long enough to have refilled) are dropped first.
    """

    def __init__(
        self, rate_per_s: float | None, burst: int, max_buckets: int = _MAX_BUCKETS
    ) -> None:
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._max_buckets = max_buckets
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at_s)

    def take(self, key: str, now_s: float) -> float:
        """Spend one of ``key``'s tokens. Returns 0.0 when the request may go, else the seconds
        until a token is back (the request is refused and spends nothing)."""
        if self.rate_per_s is None:
            return 0.0
        tokens, at_s = self._buckets.get(key, (float(self.burst), now_s))
        tokens = min(float(self.burst), tokens + max(0.0, now_s - at_s) * self.rate_per_s)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now_s)
            return (1.0 - tokens) / self.rate_per_s
        if key not in self._buckets and len(self._buckets) >= self._max_buckets:
            self._evict(now_s)
        self._buckets[key] = (tokens - 1.0, now_s)
        return 0.0

    def __len__(self) -> int:
        """Keys with a bucket now."""
        return len(self._buckets)

    def _evict(self, now_s: float) -> None:
        rate = self.rate_per_s or 0.0
        for key, (tokens, at_s) in list(self._buckets.items()):
            if tokens + (now_s - at_s) * rate >= self.burst:
                del self._buckets[key]
        while len(self._buckets) >= self._max_buckets:  # all busy: the oldest entry goes
            del self._buckets[next(iter(self._buckets))]


class StreamSlots:
    """Open event streams per tenant; ``limit=None`` counts but never refuses."""

    RETRY_AFTER_S = 5.0

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    def open(self, tenant: str) -> Callable[[], None]:
        """Take a slot for ``tenant`` (:class:`StreamLimited` when it has ``limit`` open);
        returns the function that gives it back, which does so once however often called."""
        if self.limit is not None and self._open[tenant] >= self.limit:
            raise StreamLimited(
                f"this tenant has {self.limit} event streams open at this API replica, its "
                "limit; close one, or poll GET /v1/generations/{id} instead",
                retry_after_s=self.RETRY_AFTER_S,
            )
        self._open[tenant] += 1
        given_back = False

        def close() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                self._open[tenant] -= 1
                if self._open[tenant] <= 0:
                    del self._open[tenant]

        return close

    def count(self, tenant: str) -> int:
        """Streams ``tenant`` has open now."""
        return self._open[tenant]
