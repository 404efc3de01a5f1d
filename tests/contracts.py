"""Validate payloads against OpenAI's published OpenAPI document (the gateway's contract).

The document lives outside the repository, at ``<repo>/../shared/contracts/openai-openapi.yaml``
(override with the ``MODELGATE_OPENAPI_CONTRACT`` environment variable). It is loaded once
per process (3 MB of YAML: ~1 s with libyaml's CSafeLoader) and cached.

Why the document is rewritten before use: it is OpenAPI 3.1 but still carries OpenAPI 3.0's
``nullable: true`` in about a hundred places (``finish_reason`` and ``usage`` of stream chunks
among them). JSON Schema 2020-12 ignores ``nullable``, so OpenAI's own ``"usage": null``
chunks would fail. Every ``{..., nullable: true}`` becomes ``{anyOf: [{...}, {type: null}]}``.
Errata the document gets wrong are added under new names (see ``_add_errata``):
``CreateCompletionStreamResponse`` for legacy completion stream chunks.
``x-*`` extensions, ``discriminator``, ``example`` and unknown ``format`` values
(``unixtime``) are ignored by the validator, and format checking is off.

Why ``allow_missing``: some schemas require fields that OpenAI always sends but other
OpenAI-compatible vendors omit (``message.refusal``, ``choices[].logprobs``), and a gateway
legitimately passes such responses through. ``validate(..., allow_missing=PASSTHROUGH_OPTIONAL)``
tolerates exactly those absences; everything else stays strict.

    from tests.contracts import validate
    validate("CreateChatCompletionResponse", body)   # raises ContractError naming each path
"""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = [
    "PASSTHROUGH_OPTIONAL",
    "ContractError",
    "available",
    "contract_path",
    "load_document",
    "schema_names",
    "validate",
]

DOCUMENT_URI = "urn:openai:openapi"
#: Fields OpenAI requires that other OpenAI-compatible upstreams commonly leave out.
PASSTHROUGH_OPTIONAL: frozenset[str] = frozenset({"refusal", "logprobs", "system_fingerprint"})


class ContractError(AssertionError):
    """A payload does not match its OpenAI schema. An AssertionError so pytest shows it plainly."""

    def __init__(self, schema_name: str, errors: list[ValidationError]) -> None:
        self.schema_name = schema_name
        self.errors = errors
        lines = [f"{len(errors)} violation(s) of #/components/schemas/{schema_name}:"]
        lines += [f"  - {_describe(e)}" for e in errors]
        super().__init__("\n".join(lines))


def contract_path() -> Path:
    """Where the OpenAPI document is expected: env override, else ../shared/contracts from the repo root."""
    override = os.environ.get("MODELGATE_OPENAPI_CONTRACT")
    if override:
        return Path(override)
    repo_root = Path(__file__).resolve().parents[1]
    return repo_root.parent / "shared" / "contracts" / "openai-openapi.yaml"


def available() -> bool:
    """True if the contract document exists (tests may skip cleanly when it does not)."""
    return contract_path().is_file()


@functools.cache
def load_document() -> dict[str, Any]:
    """The parsed OpenAPI document with ``nullable`` rewritten for JSON Schema 2020-12."""
    path = contract_path()
    if not path.is_file():
        raise FileNotFoundError(f"OpenAI OpenAPI contract not found at {path} (set MODELGATE_OPENAPI_CONTRACT)")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as fh:
        document = yaml.load(fh, Loader=loader)  # noqa: S506 - a Safe loader
    document = _rewrite_nullable(document)
    _add_errata(document["components"]["schemas"])
    return document


def schema_names() -> list[str]:
    return sorted(load_document()["components"]["schemas"])


@functools.cache
def _validator(schema_name: str) -> Draft202012Validator:
    document = load_document()
    if schema_name not in document["components"]["schemas"]:
        raise KeyError(f"no schema {schema_name!r} in the OpenAI contract")
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
    schema = {"$ref": f"{DOCUMENT_URI}#/components/schemas/{schema_name}"}
    return Draft202012Validator(schema, registry=registry)


def validate(schema_name: str, instance: Any, *, allow_missing: Iterable[str] = ()) -> None:
    """Raise ContractError listing every violation (JSON path, schema path, reason).

    ``allow_missing``: property names whose absence is tolerated wherever they are required
    (see PASSTHROUGH_OPTIONAL). Presence is still validated.
    """
    tolerated = frozenset(allow_missing)
    errors = [e for e in _validator(schema_name).iter_errors(instance) if not _ignorable(e, tolerated)]
    if errors:
        raise ContractError(schema_name, sorted(errors, key=lambda e: list(map(str, e.absolute_path))))


def is_valid(schema_name: str, instance: Any, *, allow_missing: Iterable[str] = ()) -> bool:
    try:
        validate(schema_name, instance, allow_missing=allow_missing)
    except ContractError:
        return False
    return True


# ------------------------------------------------------------------------ internals


def _rewrite_nullable(node: Any) -> Any:
    """Turn OpenAPI 3.0 ``nullable: true`` into a JSON Schema ``anyOf`` with ``null``."""
    if isinstance(node, list):
        return [_rewrite_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    rewritten = {key: _rewrite_nullable(value) for key, value in node.items()}
    if rewritten.get("nullable") is True:
        rewritten.pop("nullable")
        description = rewritten.pop("description", None)
        wrapped: dict[str, Any] = {"anyOf": [rewritten, {"type": "null"}]}
        if description is not None:
            wrapped["description"] = description
        return wrapped
    return rewritten


def _add_errata(schemas: dict[str, Any]) -> None:
    """Schemas the document lacks or gets wrong, added under names it does not use.

    ``CreateCompletionStreamResponse``: the document says legacy completion chunks share
    ``CreateCompletionResponse``'s shape, but OpenAI streams ``finish_reason: null`` until
    the last chunk, which that schema's enum rejects. Same schema, finish_reason nullable.
    """
    chunk = copy.deepcopy(schemas["CreateCompletionResponse"])
    choice = chunk["properties"]["choices"]["items"]
    choice["properties"]["finish_reason"] = {"anyOf": [choice["properties"]["finish_reason"], {"type": "null"}]}
    chunk["description"] = "modelgate erratum: a streamed legacy completion chunk (finish_reason may be null)."
    schemas.setdefault("CreateCompletionStreamResponse", chunk)


def _missing(error: ValidationError) -> set[str]:
    required = error.validator_value if isinstance(error.validator_value, list) else []
    instance = error.instance if isinstance(error.instance, dict) else {}
    return {name for name in required if name not in instance}


def _ignorable(error: ValidationError, tolerated: frozenset[str]) -> bool:
    """True if the error is only about tolerated missing properties (also inside anyOf/oneOf)."""
    if not tolerated:
        return False
    if error.validator == "required":
        return _missing(error) <= tolerated
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        return any(all(_ignorable(sub, tolerated) for sub in subs) for subs in branches.values())
    return False


def _describe(error: ValidationError) -> str:
    """One line: where in the payload, why, and which schema keyword rejected it."""
    shown = error
    if error.context:  # anyOf/oneOf: the closest branch explains more than "is not valid under any"
        shown = best_match(error.context) or error
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in shown.absolute_path)
    schema_path = "/".join(str(p) for p in shown.absolute_schema_path)
    message = shown.message if len(shown.message) < 300 else shown.message[:300] + "..."
    return f"{path}: {message} (schema: {schema_path})"
