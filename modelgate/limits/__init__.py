"""Rate limits and token quotas: one interface (``CounterStore``), two backends.

- ``MemoryStore``: the embedded default, exact inside one process. A server with more than one
  worker process and no Redis refuses to start (each worker would enforce the limits alone).
- ``RedisStore``: for several processes or hosts; one Lua call reserves RPM, TPM and quota
  together, one settles.

When Redis cannot be reached the policy decides (``MODELGATE_REDIS_FAILURE_POLICY``):

- ``open`` (the default): requests keep flowing, checked against in-process counters of the
  same limits (quota counters rebuilt from the database's usage records), so a Redis outage
  does not take every model offline; with N processes the rate limits may admit up to N times
  the limit until Redis is back. The state shows in ``/readyz``, the log and the
  ``modelgate_limiter_backend_up`` metric.
- ``closed``: requests that need a counter get 503 ``limiter_unavailable`` until Redis answers.

Quota counters are never assumed empty: a missing counter (new cycle, restart, Redis flushed)
is rebuilt from the usage records in the database before the request is admitted.
"""

from modelgate.limits.base import CounterStore, Decision, Plan, QuotaScope, QuotaUnknown, RateScope, StoreUnavailable
from modelgate.limits.memory import MemoryStore
from modelgate.limits.policy import Limiter

__all__ = [
    "CounterStore",
    "Decision",
    "Limiter",
    "MemoryStore",
    "Plan",
    "QuotaScope",
    "QuotaUnknown",
    "RateScope",
    "StoreUnavailable",
]
