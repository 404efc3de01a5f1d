"""Cheap, offline token estimates, used where the upstream reports no usage (and, later, for
admission reservations). Bytes/4 is the rule of thumb of BPE tokenizers on English text; it
over-counts CJK text somewhat and under-counts code with long identifiers; both errors are
bounded (0.4-1.6x on mixed text) and billing always prefers the upstream's real ``usage``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["estimate_input_tokens", "estimate_text_tokens"]

_PER_MESSAGE = 4  # role markers and separators of chat formats


def estimate_text_tokens(text: str) -> int:
    if not text:
        return 0
    return (len(text.encode("utf-8", "ignore")) + 3) // 4


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return estimate_text_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                total += estimate_text_tokens(text) if isinstance(text, str) else 85  # an image tile
            elif isinstance(part, str):
                total += estimate_text_tokens(part)
            elif isinstance(part, int):
                total += 1  # a token id
            elif isinstance(part, list):
                total += _content_tokens(part)
        return total
    return 0


def estimate_input_tokens(body: dict[str, Any]) -> int:
    """Prompt tokens of a chat, completion or embedding request body."""
    messages = body.get("messages")
    if isinstance(messages, list):
        total = 3
        for m in messages:
            if isinstance(m, dict):
                total += _PER_MESSAGE + _content_tokens(m.get("content"))
        return total
    for field in ("prompt", "input"):
        value = body.get(field)
        if value is not None:
            return _content_tokens(value)
    return 0
