"""Adapters by API family: an explicit registry, no discovery."""

from __future__ import annotations

from modelgate.adapters.base import Adapter
from modelgate.adapters.openai_compat import OpenAICompatAdapter

__all__ = ["ADAPTERS", "Adapter"]

ADAPTERS: dict[str, Adapter] = {"openai": OpenAICompatAdapter()}
