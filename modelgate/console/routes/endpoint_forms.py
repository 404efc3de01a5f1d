"""New endpoint (managed / external from a vendor preset / custom) and Edit endpoint.

The preset form fills the base URL from the vendor catalog (in the browser on change; on the
server when the field is left empty or "Fill in preset" is pressed without JavaScript) and the
user may override it. A vendor secret typed into the form becomes an encrypted vendor
credential in the same transaction as the endpoint.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import Route

from modelgate.console.context import PageContext, page
from modelgate.console.forms import FormState, opt_float, opt_int, opt_str
from modelgate.console.rendering import redirect, render
from modelgate.errors import BadRequest, GatewayError, PermissionDenied
from modelgate.rbac import Permission
from modelgate.services import credentials as csvc
from modelgate.services import endpoint_views as views
from modelgate.services import endpoints as svc
from modelgate.services.endpoints import CATEGORIES
from modelgate.storage import tables as t
from modelgate.vendors import VENDORS, vendor_base_url

__all__ = ["routes"]

P = Permission
KINDS = {"preset": "From a vendor preset", "custom": "Custom (OpenAI-compatible URL)", "managed": "Managed model"}
LIMIT_INTS = {
    "rpm": "Requests per minute",
    "tpm": "Tokens per minute",
    "default_output_tokens": "Default output tokens",
}
LIMIT_FLOATS = {"connect_timeout": "Connect timeout", "read_timeout": "Read timeout"}
PRICES = {"price_input_per_m": "Input price", "price_output_per_m": "Output price"}
FIELDS = (
    "name",
    "vendor",
    "region",
    "base_url",
    "category",
    "model_version",
    "credential_id",
    "credential_secret",
    "managed_model",
    "description",
    "quota_tokens",
    "quota_cycle",
    *LIMIT_INTS,
    *LIMIT_FLOATS,
    *PRICES,
)


def _vendor_data() -> dict[str, Any]:
    return {
        v.id: {"name": v.name, "regions": v.as_json()["regions"], "categories": list(v.categories)}
        for v in VENDORS.values()
    }


async def _options(ctx: PageContext, session: AsyncSession) -> dict[str, Any]:
    """Choices the form offers: credentials (to those who manage them) and the managed-model catalog."""
    creds = []
    if ctx.can(P.CREDENTIALS_MANAGE):
        creds = [
            (c.id, f"{c.name} ({c.secret_hint})")
            for c in await csvc.list_credentials(session, ctx.actor, ctx.tenant_id)
        ]
    managed = (
        await session.execute(
            select(t.ManagedModel.name, t.ManagedModel.vendor, t.ManagedModel.category, t.ManagedModel.model_version)
            .where(t.ManagedModel.is_active.is_(True))
            .order_by(t.ManagedModel.name)
        )
    ).all()
    return {"credentials": creds, "managed_models": [(n, f"{n} — {v}, {c}, {mv}") for n, v, c, mv in managed]}


def _common(form: FormState, values: dict[str, Any], *, editing: bool, quota: bool) -> None:
    """Limits, prices, timeouts, description; on edit an emptied field clears the setting."""
    for key, label in LIMIT_INTS.items():
        v = opt_int(form, key, label)
        if v is not None or editing:
            values[key] = v
    for key, label in LIMIT_FLOATS.items():
        v = opt_float(form, key, label)
        if v is not None or editing:
            values[key] = v
    for key, label in PRICES.items():
        v = opt_float(form, key, label)
        if v is not None or editing:
            values[key] = v if v is not None else 0.0
    desc = opt_str(form, "description")
    if desc is not None or editing:
        values["description"] = desc
    if quota:
        q = opt_int(form, "quota_tokens", "Endpoint quota")
        if q is not None or editing:
            values["quota_tokens"] = q
        if opt_str(form, "quota_cycle"):
            values["quota_cycle"] = opt_str(form, "quota_cycle")


async def _credential(
    ctx: PageContext,
    session: AsyncSession,
    form: FormState,
    values: dict[str, Any],
    endpoint_name: str,
    vendor: str | None,
) -> None:
    if not ctx.can(P.CREDENTIALS_MANAGE):
        return
    secret = opt_str(form, "credential_secret")
    if secret is not None:
        taken = set(
            (
                await session.execute(
                    select(t.VendorCredential.name).where(t.VendorCredential.tenant_id == ctx.tenant_id)
                )
            ).scalars()
        )
        name, n = f"{endpoint_name}-key", 2
        while name in taken:
            name, n = f"{endpoint_name}-key-{n}", n + 1
        cred = await csvc.create_credential(
            session, ctx.services.box, ctx.actor, ctx.tenant_id, name=name, secret=secret, vendor=vendor
        )
        values["credential_id"] = cred.id
    else:
        values["credential_id"] = opt_int(form, "credential_id", "Credential")


async def _create_values(ctx: PageContext, session: AsyncSession, form: FormState, kind: str) -> dict[str, Any]:
    name = svc.validate_name(form.get("name").strip())
    values: dict[str, Any] = {"name": name, "kind": kind}
    if kind == "managed":
        m = (
            await session.execute(
                select(t.ManagedModel).where(
                    t.ManagedModel.name == form.get("managed_model"), t.ManagedModel.is_active.is_(True)
                )
            )
        ).scalar_one_or_none()
        if m is None:
            raise BadRequest("Choose a managed model from the catalog.", param="managed_model")
        values.update(managed_model_id=m.id, vendor=m.vendor, category=m.category, model_version=m.model_version)
    else:
        values["model_version"] = form.get("model_version")
        values["category"] = form.get("category") or "llm"
        if kind == "preset":
            vendor = VENDORS.get(form.get("vendor"))
            if vendor is None:
                raise BadRequest("Choose a vendor.", param="vendor")
            if values["category"] not in vendor.categories:
                raise BadRequest(
                    f"{vendor.name} does not offer '{values['category']}' models here (it offers "
                    f"{', '.join(vendor.categories)}).",
                    param="category",
                )
            values["vendor"] = vendor.id
            values["base_url"] = opt_str(form, "base_url") or vendor_base_url(vendor.id, opt_str(form, "region"))
        else:
            values["vendor"] = opt_str(form, "vendor") or "openai-compatible"
            values["base_url"] = opt_str(form, "base_url")
        await _credential(ctx, session, form, values, name, values["vendor"])
    _common(form, values, editing=False, quota=True)
    return values


def _form_page(
    ctx: PageContext, form: FormState, *, kind: str, ep: t.Endpoint | None, role: str | None, options: dict[str, Any]
) -> Response:
    if ep is None:
        title, crumbs = "New endpoint", [("New", None)]
    else:
        title, crumbs = f"Edit {ep.name}", [(ep.name, f"/console/endpoints/{ep.name}"), ("Edit", None)]
    vendor = VENDORS.get(form.get("vendor"))
    regions = [(r, f"{r} — {u}") for r, u in vendor.regions.items()] if vendor else []
    return render(
        ctx,
        "endpoints/form.html",
        title=title,
        form=form,
        kind=kind,
        kinds=KINDS,
        ep=ep,
        role=role,
        breadcrumb=[("Home", "/console"), ("Endpoints", "/console/endpoints"), *crumbs],
        vendors=[(v.id, v.name) for v in VENDORS.values()],
        regions=regions,
        vendor_data=_vendor_data(),
        categories=CATEGORIES,
        status=form.status,
        quota_editable=ep is None or ctx.can(P.ENDPOINT_EDIT_QUOTA, role),
        **options,
    )


def _fill_preset(form: FormState) -> None:
    vendor = VENDORS.get(form.get("vendor"))
    if vendor is None:
        return
    region = form.get("region")
    if region not in vendor.regions:
        region = form.values["region"] = next(iter(vendor.regions))
    form.values["base_url"] = vendor.regions[region]
    if form.get("category") not in vendor.categories:
        form.values["category"] = vendor.categories[0]


@page
async def endpoint_new(ctx: PageContext) -> Response:
    if not ctx.can(P.ENDPOINT_CREATE):
        raise PermissionDenied("Only Gateway Admins may create endpoints.")
    kind = ctx.request.query_params.get("kind", "preset")
    kind = kind if kind in KINDS else "preset"
    options = await ctx.read(lambda s: _options(ctx, s))
    if ctx.request.method == "GET":
        form = FormState({"vendor": "openai", "category": "llm", "quota_cycle": "monthly"})
        _fill_preset(form)
        if kind == "custom":
            form.values.update(vendor="", base_url="")
        return _form_page(ctx, form, kind=kind, ep=None, role=None, options=options)
    form = FormState.of(await ctx.form())
    if form.get("action") == "preset":  # "Fill in preset" without JavaScript: keep the input, fill the URL
        _fill_preset(form)
        return _form_page(ctx, form, kind=kind, ep=None, role=None, options=options)

    async def op(session: AsyncSession) -> tuple[str, str | None]:
        values = await _create_values(ctx, session, form, kind)
        ep = await svc.create_endpoint(session, ctx.services.settings, ctx.actor, ctx.tenant_id, values)
        return ep.name, await svc.quota_warning(session, ep)

    try:
        name, warning = await ctx.write(op)
    except GatewayError as exc:
        form.fail(exc, FIELDS)
        return _form_page(ctx, form, kind=kind, ep=None, role=None, options=options)
    return redirect(f"/console/endpoints/{name}", f"Endpoint {name} created." + (f" {warning}" if warning else ""))


def _edit_form(ep: t.Endpoint) -> FormState:
    values = {k: getattr(ep, k) for k in svc.EDITABLE}
    values["credential_id"] = ep.credential_id or ""
    return FormState({k: ("" if v is None else v) for k, v in values.items()})


@page
async def endpoint_edit(ctx: PageContext) -> Response:
    name = ctx.request.path_params["name"]

    async def load(session: AsyncSession) -> tuple[t.Endpoint, str | None, dict[str, Any]]:
        ep, role = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        return ep, role, await _options(ctx, session)

    ep, role, options = await ctx.read(load)
    if not ctx.can(P.ENDPOINT_EDIT, role):
        raise PermissionDenied(f"You may not edit endpoint '{name}'.")
    kind = "managed" if ep.managed_model_id is not None else ep.kind
    if ctx.request.method == "GET":
        return _form_page(ctx, _edit_form(ep), kind=kind, ep=ep, role=role, options=options)
    form = FormState.of(await ctx.form())

    async def op(session: AsyncSession) -> str | None:
        target, own = await views.visible_endpoint(session, ctx.actor, ctx.tenant_id, name)
        values: dict[str, Any] = {}
        if target.managed_model_id is None:
            values.update(
                model_version=form.get("model_version"), category=form.get("category"), base_url=form.get("base_url")
            )
            await _credential(ctx, session, form, values, name, target.vendor)
        _common(form, values, editing=True, quota=ctx.can(P.ENDPOINT_EDIT_QUOTA, own))
        updated = await svc.update_endpoint(session, ctx.services.settings, ctx.actor, target, values, own)
        return await svc.quota_warning(session, updated)

    try:
        warning = await ctx.write(op)
    except GatewayError as exc:
        form.fail(exc, FIELDS)
        return _form_page(ctx, form, kind=kind, ep=ep, role=role, options=options)
    return redirect(f"/console/endpoints/{name}", f"Endpoint {name} saved." + (f" {warning}" if warning else ""))


routes = [
    Route("/endpoints/new", endpoint_new, methods=["GET", "POST"]),
    Route("/endpoints/{name}/edit", endpoint_edit, methods=["GET", "POST"]),
]
