"""The vendor catalog: presets for external endpoints (default base URLs, regions, categories).

Data only. A vendor with several hosts lists them as regions; the first region is the default.
Every vendor here speaks an OpenAI-compatible API at the given base URL (``api_family``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["VENDORS", "Vendor", "vendor_base_url"]


@dataclass(frozen=True, slots=True)
class Vendor:
    id: str
    name: str
    regions: dict[str, str]  # region id → base URL
    categories: tuple[str, ...]
    api_family: str = "openai"
    docs: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "default_base_url": next(iter(self.regions.values())),
            "regions": [{"id": r, "base_url": u} for r, u in self.regions.items()],
            "categories": list(self.categories),
            "api_family": self.api_family,
        }


_ALL = ("llm", "embedding", "image")
VENDORS: dict[str, Vendor] = {
    v.id: v
    for v in (
        Vendor("openai", "OpenAI", {"global": "https://api.openai.com/v1"}, _ALL),
        Vendor("azure-openai", "Azure OpenAI", {"global": "https://YOUR-RESOURCE.openai.azure.com/openai/v1"}, _ALL),
        Vendor("anthropic", "Anthropic (OpenAI-compatible API)", {"global": "https://api.anthropic.com/v1"}, ("llm",)),
        Vendor("gemini", "Google Gemini (OpenAI-compatible API)",
               {"global": "https://generativelanguage.googleapis.com/v1beta/openai"}, ("llm", "embedding", "image")),
        Vendor("dashscope", "Alibaba Cloud DashScope (Qwen)", {
            "cn-beijing": "https://dashscope.aliyuncs.com/compatible-mode/v1",
            "intl-singapore": "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            "us-virginia": "https://dashscope-us.aliyuncs.com/compatible-mode/v1",
        }, ("llm", "embedding")),
        Vendor("volcengine-ark", "Volcengine Ark (Doubao)", {
            "cn-beijing": "https://ark.cn-beijing.volces.com/api/v3",
            "ap-southeast": "https://ark.ap-southeast.bytepluses.com/api/v3",
        }, ("llm", "embedding", "image")),
        Vendor("deepseek", "DeepSeek", {"global": "https://api.deepseek.com/v1"}, ("llm",)),
        Vendor("moonshot", "Moonshot AI (Kimi)", {
            "cn": "https://api.moonshot.cn/v1",
            "intl": "https://api.moonshot.ai/v1",
        }, ("llm",)),
        Vendor("zhipu", "Zhipu AI (GLM)", {
            "cn": "https://open.bigmodel.cn/api/paas/v4",
            "intl": "https://api.z.ai/api/paas/v4",
        }, ("llm", "embedding", "image")),
        Vendor("mistral", "Mistral AI", {"global": "https://api.mistral.ai/v1"}, ("llm", "embedding")),
        Vendor("groq", "Groq", {"global": "https://api.groq.com/openai/v1"}, ("llm",)),
        Vendor("together", "Together AI", {"global": "https://api.together.xyz/v1"}, _ALL),
        Vendor("openrouter", "OpenRouter", {"global": "https://openrouter.ai/api/v1"}, ("llm",)),
        Vendor("xai", "xAI (Grok)", {"global": "https://api.x.ai/v1"}, ("llm", "image")),
        Vendor("ollama", "Ollama (self-hosted)", {"local": "http://127.0.0.1:11434/v1"}, ("llm", "embedding")),
        Vendor("vllm", "vLLM (self-hosted)", {"local": "http://127.0.0.1:8000/v1"}, ("llm", "embedding")),
    )
}  # fmt: skip


def vendor_base_url(vendor_id: str, region: str | None) -> str | None:
    """The preset base URL, or None when the vendor or region is unknown."""
    vendor = VENDORS.get(vendor_id)
    if vendor is None:
        return None
    if region is None:
        return next(iter(vendor.regions.values()))
    return vendor.regions.get(region)
