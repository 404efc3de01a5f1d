"""Offline token estimates (used when an upstream reports no usage, and for admission)."""

from __future__ import annotations

from typing import Any

import pytest

from modelgate.gateway.tokens import estimate_input_tokens, estimate_text_tokens


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", 0),
        ("a", 1),
        ("abcd", 1),
        ("abcde", 2),
        ("hello world, this is a test", 7),  # 27 bytes
        ("你好", 2),  # 6 UTF-8 bytes: CJK counts by bytes, not characters
        ("🙂", 1),  # 4 bytes
    ],
)
def test_text_tokens_are_bytes_over_four_rounded_up(text: str, tokens: int) -> None:
    assert estimate_text_tokens(text) == tokens


def test_text_tokens_grow_with_the_text() -> None:
    counts = [estimate_text_tokens("word " * n) for n in range(0, 200, 10)]
    assert counts == sorted(counts) and counts[0] == 0 and counts[-1] > counts[1]


def test_english_estimate_is_within_the_documented_bounds() -> None:
    """Roughly one token per 4 bytes of English: against ~1.3 tokens a word, within 0.4-1.6x."""
    text = ("The gateway forwards each request to the vendor and records how many tokens it used. " * 20).strip()
    reference = len(text.split()) * 1.3
    assert 0.4 * reference <= estimate_text_tokens(text) <= 1.6 * reference


def test_chat_messages_count_content_and_framing() -> None:
    body = {"messages": [{"role": "system", "content": "abcd" * 3}, {"role": "user", "content": "abcd"}]}
    # 3 for the reply priming, 4 per message for role markers, then the contents
    assert estimate_input_tokens(body) == 3 + (4 + 3) + (4 + 1)


def test_chat_content_parts() -> None:
    parts: list[Any] = [
        {"type": "text", "text": "abcdabcd"},  # 2
        {"type": "image_url", "image_url": {"url": "data:..."}},  # an image tile: 85
        "abcd",  # 1
    ]
    assert estimate_input_tokens({"messages": [{"role": "user", "content": parts}]}) == 3 + 4 + 2 + 85 + 1


def test_chat_messages_tolerate_odd_entries() -> None:
    body = {"messages": [{"role": "assistant", "content": None, "tool_calls": []}, "junk", 42]}
    assert estimate_input_tokens(body) == 3 + 4


@pytest.mark.parametrize(
    ("body", "tokens"),
    [
        ({"prompt": "abcdabcd"}, 2),
        ({"prompt": ["abcd", "abcdabcd"]}, 3),
        ({"prompt": [101, 102, 103]}, 3),  # a token array: one token per id
        ({"prompt": [[1, 2], [3]]}, 3),  # several token arrays
        ({"input": "abcdabcdabcd"}, 3),  # embeddings
        ({"input": ["a", "b"]}, 2),
        ({"prompt": "x" * 4000}, 1000),
        ({}, 0),
        ({"model": "m", "temperature": 1}, 0),
    ],
)
def test_prompt_and_input(body: dict[str, Any], tokens: int) -> None:
    assert estimate_input_tokens(body) == tokens


def test_messages_win_over_prompt() -> None:
    assert estimate_input_tokens({"messages": [], "prompt": "x" * 400}) == 3
