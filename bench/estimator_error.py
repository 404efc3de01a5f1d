"""How far the gateway's admission estimate (UTF-8 bytes / 4) is from exact token counts.

Not a test: a measurement for the docs. Needs the optional `toktok-rs` package (exact,
offline BPE counts identical to tiktoken, plus Qwen's tokenizer), e.g. in a scratch venv:

    python3 -m venv /tmp/tok && /tmp/tok/bin/pip install toktok-rs
    PYTHONPATH=. /tmp/tok/bin/python bench/estimator_error.py

Samples are real text: this repository's docs and code, and a few prompts written the way
people write them (English, Chinese, mixed, JSON).
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import toktok

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from modelgate.gateway.tokens import estimate_text_tokens  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = {
    "chinese prompt": [
        "请用三句话总结这份季度财报的要点，并指出最大的风险。",
        "把下面这段客服对话分类为：投诉、咨询、退款、其他。客户说：我上周买的耳机左边没声音，能换一个吗？",
        "中国的首都是哪里？请简要介绍它的历史和今天的城市规模。",
        "你是一名资深的数据分析师。请根据以下销售数据，找出增长最快的三个地区，并解释可能的原因。",
    ],
    "mixed zh/en prompt": [
        "用 Python 写一个函数 parse_invoice(text)，从发票文本里提取 invoice_no、amount 和 date，返回 dict。",
        "Translate to English: 模型网关负责统一鉴权、限流和计费。",
    ],
    "json payload": [
        '{"order_id": 93211, "items": [{"sku": "A-1", "qty": 2, "price": 19.9}], "customer": {"name": "Li Wei"}}',
    ],
}


def corpus() -> dict[str, list[str]]:
    samples = {k: list(v) for k, v in PROMPTS.items()}
    docs = [p.read_text() for p in (ROOT / "README.md", ROOT.parent / "shared" / "DESIGN.md") if p.exists()]
    samples["english docs"] = [para for d in docs for para in d.split("\n\n") if len(para) > 200][:60]
    code = [p.read_text() for p in sorted((ROOT / "modelgate").rglob("*.py"))[:40]]
    samples["python code"] = [c[:4000] for c in code if len(c) > 500]
    return samples


def main() -> None:
    print(f"{'sample':<20} {'n':>4} {'encoding':<12} {'est/exact median':>17} {'min':>6} {'max':>6}")
    for name, texts in corpus().items():
        for enc in ("cl100k_base", "o200k_base", "qwen3.5"):
            exact = toktok.batch_count(texts, enc)
            ratios = [estimate_text_tokens(t) / e for t, e in zip(texts, exact, strict=True) if e]
            print(f"{name:<20} {len(ratios):>4} {enc:<12} {statistics.median(ratios):>17.2f} "
                  f"{min(ratios):>6.2f} {max(ratios):>6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
