"""Monthly partitions of ``usage_events`` on PostgreSQL (UTC calendar months).

Retention drops whole partitions instead of deleting rows; the server creates the next
months' partitions ahead of time. A DEFAULT partition catches anything outside them.
"""

from __future__ import annotations

from datetime import date

__all__ = ["month_add", "partition_ddl", "partition_name"]


def month_add(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 + months, 12)
    return date(y, m + 1, 1)


def partition_name(month: date) -> str:
    return f"usage_events_p{month:%Y%m}"


def partition_ddl(month: date) -> str:
    nxt = month_add(month, 1)
    return (
        f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF usage_events "
        f"FOR VALUES FROM ('{month:%Y-%m-%d} 00:00:00+00') TO ('{nxt:%Y-%m-%d} 00:00:00+00')"
    )
