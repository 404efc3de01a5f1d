"""Form input: what the user typed (kept as typed, to show again on error), parsed into the
values the services take, and the services' errors mapped back onto the field at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.datastructures import FormData

from modelgate.errors import BadRequest, GatewayError

__all__ = ["FormState", "opt_datetime", "opt_float", "opt_int", "opt_str"]


@dataclass
class FormState:
    """The values of a form as typed, and the errors to show: per field, and for the whole form."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    status: int = 200

    @classmethod
    def of(cls, form: FormData, **defaults: Any) -> FormState:
        values: dict[str, Any] = dict(defaults)
        for key in form:
            items = form.getlist(key)
            values[key] = items if len(items) > 1 or key.endswith("[]") else items[0]
        values.pop("csrf_token", None)
        return cls(values)

    def get(self, key: str, default: Any = "") -> Any:
        value = self.values.get(key)
        return default if value is None else value

    def fail(self, exc: GatewayError, fields: tuple[str, ...] = ()) -> FormState:
        """Attach a service's error: to its field when the form shows that field, else to the form."""
        self.error = exc.message
        self.status = exc.status
        if exc.param and (not fields or exc.param in fields):
            self.errors[exc.param] = exc.message
        return self

    @property
    def has_errors(self) -> bool:
        return bool(self.error or self.errors)


def opt_str(form: FormState, key: str) -> str | None:
    value = form.values.get(key)
    if not isinstance(value, str) or not value.strip():
        return None
    return value.strip()


def opt_int(form: FormState, key: str, label: str | None = None) -> int | None:
    raw = opt_str(form, key)
    if raw is None:
        return None
    try:
        return int(raw.replace(",", "").replace("_", ""))
    except ValueError:
        raise BadRequest(f"{label or key} must be a whole number (or empty), not {raw!r}.", param=key) from None


def opt_float(form: FormState, key: str, label: str | None = None) -> float | None:
    raw = opt_str(form, key)
    if raw is None:
        return None
    try:
        return float(raw.replace(",", ""))
    except ValueError:
        raise BadRequest(f"{label or key} must be a number (or empty), not {raw!r}.", param=key) from None


def opt_datetime(form: FormState, key: str, label: str | None = None) -> datetime | None:
    """A ``datetime-local`` (or date) input, read as UTC."""
    raw = opt_str(form, key)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise BadRequest(f"{label or key} must be a date and time like 2030-01-31T18:00.", param=key) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
