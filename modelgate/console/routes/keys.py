"""API keys (create with the secret shown once, filter, disable/enable, rotate, delete) and
vendor credentials (create, delete). Secrets appear only in the response to the POST that made
them, never in a URL, a redirect or a log.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response
from starlette.routing import Route

from modelgate.console.context import PageContext, page
from modelgate.console.forms import FormState, opt_datetime, opt_int, opt_str
from modelgate.console.rendering import redirect, render
from modelgate.errors import GatewayError, PermissionDenied
from modelgate.rbac import Permission
from modelgate.services import credentials as csvc
from modelgate.services import keys as ksvc
from modelgate.services import users as usvc
from modelgate.vendors import VENDORS

__all__ = ["routes"]

P = Permission
_KEYS = ("Home", "/console"), ("API keys", "/console/keys")
_CREDS = ("Home", "/console"), ("Vendor credentials", "/console/credentials")


@page
async def key_list(ctx: PageContext) -> Response:
    q = ctx.request.query_params
    filters = FormState({"status": q.get("status", ""), "owner": q.get("owner", "").strip()[:128]})

    async def op(session: AsyncSession) -> tuple[list[Any], list[str]]:
        rows = await ksvc.list_keys(
            session, ctx.actor, ctx.tenant_id, status=filters.get("status") or None, owner=filters.get("owner") or None
        )
        owners = sorted({u for _, u in await ksvc.list_keys(session, ctx.actor, ctx.tenant_id)})
        return [ksvc.key_out(k, u) for k, u in rows], owners

    keys, owners = await ctx.read(op)
    return render(
        ctx,
        "keys/list.html",
        title="API keys",
        breadcrumb=[*_KEYS[:1], ("API keys", None)],
        keys=keys,
        filters=filters,
        owners=owners,
        filtered=bool(filters.get("status") or filters.get("owner")),
    )


async def _owners(ctx: PageContext) -> list[tuple[str, str]]:
    if not ctx.can(P.USERS_MANAGE):
        return []
    users = await ctx.read(lambda s: usvc.list_users(s, ctx.actor, ctx.tenant_id))
    return [(u["username"], u["username"] + ("" if u["is_active"] else " (inactive)")) for u in users]


@page
async def key_new(ctx: PageContext) -> Response:
    if not ctx.can(P.KEYS_MANAGE):
        raise PermissionDenied("Only Gateway Admins may create API keys.")
    owners = await _owners(ctx)
    form = FormState({"owner": ctx.user.username})
    if ctx.request.method == "POST":
        form = FormState.of(await ctx.form())

        async def op(session: AsyncSession) -> tuple[dict[str, Any], str]:
            key, secret = await ksvc.create_key(
                session,
                ctx.actor,
                ctx.tenant_id,
                owner=form.get("owner").strip(),
                name=opt_str(form, "name"),
                expires_at=opt_datetime(form, "expires_at", "Expiry"),
                rpm=opt_int(form, "rpm", "RPM"),
                tpm=opt_int(form, "tpm", "TPM"),
            )
            return ksvc.key_out(key, form.get("owner").strip()), secret

        try:
            key, secret = await ctx.write(op)
            return render(
                ctx,
                "keys/secret.html",
                title="API key created",
                key=key,
                secret=secret,
                rotated=False,
                breadcrumb=[*_KEYS, (key["name"], None)],
            )
        except GatewayError as exc:
            form.fail(exc, ("owner", "name", "expires_at", "rpm", "tpm"))
    return render(
        ctx,
        "keys/new.html",
        title="New API key",
        form=form,
        owners=owners,
        breadcrumb=[*_KEYS, ("New", None)],
        status=form.status,
    )


def _key_id(ctx: PageContext) -> int:
    return int(ctx.request.path_params["key_id"])


@page
async def key_status(ctx: PageContext) -> Response:
    key_id, action = _key_id(ctx), ctx.request.url.path.rsplit("/", 1)[-1]
    status = "disabled" if action == "disable" else "active"
    key = await ctx.write(lambda s: ksvc.set_key_status(s, ctx.actor, ctx.tenant_id, key_id, status))
    verb = "disabled: it is refused from the next request on" if status == "disabled" else "enabled"
    return redirect("/console/keys", f"API key {key.name} {verb}.")


@page
async def key_rotate(ctx: PageContext) -> Response:
    key_id = _key_id(ctx)
    key = await ctx.read(lambda s: ksvc.get_key(s, ctx.actor, ctx.tenant_id, key_id))
    form = FormState({"grace": "0"})
    if ctx.request.method == "POST":
        form = FormState.of(await ctx.form())
        try:
            grace = opt_int(form, "grace", "Grace period") or 0

            async def op(session: AsyncSession) -> tuple[dict[str, Any], str]:
                k, secret = await ksvc.rotate_key(session, ctx.actor, ctx.tenant_id, key_id, grace)
                return ksvc.key_out(k), secret

            out, secret = await ctx.write(op)
            return render(
                ctx,
                "keys/secret.html",
                title="API key rotated",
                key=out,
                secret=secret,
                rotated=True,
                grace=grace,
                breadcrumb=[*_KEYS, (out["name"], None)],
            )
        except GatewayError as exc:
            form.fail(exc, ("grace",))
    elif not ctx.can(P.KEYS_MANAGE):
        raise PermissionDenied("Only Gateway Admins may rotate API keys.")
    return render(
        ctx,
        "keys/rotate.html",
        title=f"Rotate {key.name}",
        key=key,
        form=form,
        breadcrumb=[*_KEYS, (key.name, None), ("Rotate", None)],
        status=form.status,
    )


@page
async def key_delete(ctx: PageContext) -> Response:
    key_id = _key_id(ctx)
    if ctx.request.method == "POST":
        key = await ctx.read(lambda s: ksvc.get_key(s, ctx.actor, ctx.tenant_id, key_id))
        await ctx.write(lambda s: ksvc.delete_key(s, ctx.actor, ctx.tenant_id, key_id))
        return redirect("/console/keys", f"API key {key.name} deleted.")
    if not ctx.can(P.KEYS_MANAGE):
        raise PermissionDenied("Only Gateway Admins may delete API keys.")
    key = await ctx.read(lambda s: ksvc.get_key(s, ctx.actor, ctx.tenant_id, key_id))
    return render(
        ctx,
        "confirm.html",
        title=f"Delete {key.name}",
        breadcrumb=[*_KEYS, (key.name, None), ("Delete", None)],
        action=f"/console/keys/{key_id}/delete",
        cancel="/console/keys",
        button=f"Delete {key.name}",
        message=f"Deleting API key {key.name} (mg-{key.public_id}-…) is irreversible: every client using it "
        "is refused from the next request on. Its usage history stays.",
    )


@page
async def credential_list(ctx: PageContext) -> Response:
    creds = await ctx.read(lambda s: csvc.list_credentials(s, ctx.actor, ctx.tenant_id))
    return render(
        ctx,
        "keys/credentials.html",
        title="Vendor credentials",
        breadcrumb=[_CREDS[0], ("Vendor credentials", None)],
        credentials=[csvc.credential_out(c) for c in creds],
    )


@page
async def credential_new(ctx: PageContext) -> Response:
    if not ctx.can(P.CREDENTIALS_MANAGE):
        raise PermissionDenied("Only Gateway Admins may manage vendor credentials.")
    form = FormState()
    if ctx.request.method == "POST":
        form = FormState.of(await ctx.form())
        try:
            cred = await ctx.write(
                lambda s: csvc.create_credential(
                    s,
                    ctx.services.box,
                    ctx.actor,
                    ctx.tenant_id,
                    name=form.get("name").strip(),
                    secret=form.get("secret"),
                    vendor=opt_str(form, "vendor"),
                )
            )
            return redirect("/console/credentials", f"Credential {cred.name} stored (encrypted).")
        except GatewayError as exc:
            form.fail(exc, ("name", "secret", "vendor"))
    form.values.pop("secret", None)  # a secret is never sent back to the browser
    return render(
        ctx,
        "keys/credential_new.html",
        title="New vendor credential",
        form=form,
        vendors=[(v.id, v.name) for v in VENDORS.values()],
        breadcrumb=[*_CREDS, ("New", None)],
        status=form.status,
    )


@page
async def credential_delete(ctx: PageContext) -> Response:
    cred_id = int(ctx.request.path_params["cred_id"])
    if ctx.request.method == "POST":
        await ctx.write(lambda s: csvc.delete_credential(s, ctx.actor, ctx.tenant_id, cred_id))
        return redirect("/console/credentials", "Credential deleted.")
    creds = await ctx.read(lambda s: csvc.list_credentials(s, ctx.actor, ctx.tenant_id))
    cred = next((c for c in creds if c.id == cred_id), None)
    name = cred.name if cred else f"#{cred_id}"
    return render(
        ctx,
        "confirm.html",
        title=f"Delete {name}",
        breadcrumb=[*_CREDS, (name, None), ("Delete", None)],
        action=f"/console/credentials/{cred_id}/delete",
        cancel="/console/credentials",
        button=f"Delete {name}",
        message=f"Deleting credential {name} is irreversible; endpoints still using it must be changed first.",
    )


routes = [
    Route("/keys", key_list, methods=["GET"]),
    Route("/keys/new", key_new, methods=["GET", "POST"]),
    Route("/keys/{key_id:int}/disable", key_status, methods=["POST"]),
    Route("/keys/{key_id:int}/enable", key_status, methods=["POST"]),
    Route("/keys/{key_id:int}/rotate", key_rotate, methods=["GET", "POST"]),
    Route("/keys/{key_id:int}/delete", key_delete, methods=["GET", "POST"]),
    Route("/credentials", credential_list, methods=["GET"]),
    Route("/credentials/new", credential_new, methods=["GET", "POST"]),
    Route("/credentials/{cred_id:int}/delete", credential_delete, methods=["GET", "POST"]),
]
