"""HTTP layer: the served subset of the Fly Machines API (paths with the ``/v1`` prefix).

Request and response bodies are the spec's schemas
(``/work/shared/specs/fly-machines-openapi.json``); errors are ``ErrorResponse``
(``{"error": "..."}``). Every request needs ``Authorization: Bearer <token>`` (401
otherwise; ``FlyV1 <token>`` too) and stays within Fly's per-action rate limits
(``_ratelimit``: 429 with ``Retry-After``). The operations served are :data:`ROUTES`
(method, path, handler, spec operation ID): apps, app secrets, Machines (list, create,
show, update, delete, start, stop, restart, wait, events), metadata and leases.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from ._config import parse_create_request, parse_lease_request, parse_update_request
from ._errors import ApiError, bad_request
from ._fleet import Fleet
from ._machine import SETTLED_STATES, WAIT_STATES
from ._ratelimit import RequestLimiter

__all__ = ["NONCE_HEADER", "build_app"]

log = structlog.get_logger("fly_engine")

NONCE_HEADER = "fly-machine-lease-nonce"
#: ``Machines_wait`` blocks for at most this long (spec: "up to 60 seconds").
MAX_WAIT_S = 60
_FLEET = web.AppKey("fleet", Fleet)
_TOKEN = web.AppKey("token", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _ok() -> web.Response:
    return web.json_response({"ok": True})


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body(), status=exc.status, headers=exc.headers())
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() == "allow"}
        return web.json_response({"error": exc.reason.lower()}, status=exc.status, headers=headers)
    except Exception:
        log.exception("request failed", method=request.method, path=request.path)
        return web.json_response({"error": "internal error"}, status=500)


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    expected = request.app[_TOKEN]
    if scheme.lower() not in ("bearer", "flyv1") or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise ApiError(401, "unauthorized: missing or invalid bearer token")
    return await handler(request)


async def _body(request: web.Request, *, required: bool) -> Any:
    raw = await request.read()
    if not raw.strip():
        if required:
            raise bad_request("request body required")
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise bad_request("invalid JSON body") from None


def _flag(request: web.Request, name: str) -> bool:
    value = request.query.get(name, "").strip().lower()
    if value in ("", "false", "0", "no"):
        return False
    if value in ("true", "1", "yes"):
        return True
    raise bad_request(f"{name}: expected a boolean")


def _int(request: web.Request, name: str, default: int) -> int:
    value = request.query.get(name)
    if value in (None, ""):
        return default
    try:
        return int(value)
    except ValueError:
        raise bad_request(f"{name}: expected an integer") from None


def _ids(request: web.Request) -> tuple[Fleet, str, str]:
    return request.app[_FLEET], request.match_info["app_name"], request.match_info["machine_id"]


# -- apps ------------------------------------------------------------------------------


async def apps_create(request: web.Request) -> web.Response:
    body = await _body(request, required=True)
    if not isinstance(body, dict):
        raise bad_request("body: expected a JSON object")
    name = body.get("name") or body.get("app_name")
    if not isinstance(name, str) or not name:
        raise bad_request("name: required, a string")
    request.app[_FLEET].create_app(name, str(body.get("org_slug") or "personal"), str(body.get("network") or ""))
    return web.Response(status=201)


async def apps_list(request: web.Request) -> web.Response:
    org_slug = request.query.get("org_slug")
    if not org_slug:
        raise bad_request("org_slug: required")
    apps = [a.to_json() for a in request.app[_FLEET].apps.values() if a.org_slug == org_slug]
    return web.json_response({"apps": apps, "total_apps": len(apps)})


async def apps_show(request: web.Request) -> web.Response:
    return web.json_response(request.app[_FLEET].app(request.match_info["app_name"]).to_json())


# -- machines --------------------------------------------------------------------------


async def machines_list(request: web.Request) -> web.Response:
    fleet, app_name = request.app[_FLEET], request.match_info["app_name"]
    states = request.query.get("state")
    machines = fleet.list_machines(
        app_name,
        include_deleted=_flag(request, "include_deleted"),
        region=request.query.get("region") or None,
        states=frozenset(s.strip() for s in states.split(",") if s.strip()) if states else None,
        metadata={k[len("metadata.") :]: v for k, v in request.query.items() if k.startswith("metadata.")},
    )
    include_lease, summary = _flag(request, "include_leases"), _flag(request, "summary")
    return web.json_response([m.to_json(include_lease=include_lease, summary=summary) for m in machines])


async def machines_create(request: web.Request) -> web.Response:
    fleet, app_name = request.app[_FLEET], request.match_info["app_name"]
    fleet.app(app_name)
    create = parse_create_request(await _body(request, required=True))
    machine, nonce = await fleet.create(app_name, create)
    return web.json_response(machine.to_json(nonce=nonce))


async def machines_show(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    machine = fleet.machine(app_name, machine_id)
    return web.json_response(machine.to_json(include_lease=_flag(request, "include_leases")))


async def machines_update(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    fleet.machine(app_name, machine_id)
    update = parse_update_request(await _body(request, required=True))
    machine = await fleet.update(app_name, machine_id, request.headers.get(NONCE_HEADER), update)
    return web.json_response(machine.to_json())


async def machines_delete(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    await fleet.destroy(app_name, machine_id, request.headers.get(NONCE_HEADER), _flag(request, "force"))
    return _ok()


async def machines_stop(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    fleet.machine(app_name, machine_id)
    body = await _body(request, required=False)
    await fleet.stop(app_name, machine_id, request.headers.get(NONCE_HEADER), body)
    return _ok()


async def machines_start(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    previous = await fleet.start(app_name, machine_id, request.headers.get(NONCE_HEADER))
    return web.json_response({"previous_state": previous, "migrated": False, "new_host": ""})


async def machines_wait(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    machine = fleet.machine(app_name, machine_id)
    states = frozenset(
        s.strip() for raw in request.query.getall("state", []) for s in raw.split(",") if s.strip()
    ) or frozenset({"started"})
    unknown = sorted(states - set(WAIT_STATES))
    if unknown:
        raise bad_request(f"state: unknown state {unknown[0]!r} (expected one of {', '.join(WAIT_STATES)})")
    timeout = _int(request, "timeout", MAX_WAIT_S)
    if timeout < 1:
        raise bad_request("timeout: must be at least 1 second")
    version = request.query.get("version") or request.query.get("instance_id") or None
    if version is not None and version not in machine.versions:
        raise bad_request(f"version: unknown version {version!r} of machine {machine_id}")
    wanted = states | (SETTLED_STATES if "settled" in states else frozenset())
    after_event_id = request.query.get("from_event_id") or None
    if machine.state == "destroyed" and "destroyed" not in wanted and version is None and after_event_id is None:
        raise bad_request(f"machine {machine_id} is destroyed")
    try:
        event = await machine.wait_for(
            states,
            min(timeout, MAX_WAIT_S),
            version=version,
            after_event_id=after_event_id,
        )
    except TimeoutError:
        raise ApiError(
            408, f"deadline_exceeded: machine {machine_id} did not reach state {'|'.join(sorted(states))} in {timeout}s"
        ) from None
    reached = event["status"] if event["status"] in wanted else sorted(states)[0]
    return web.json_response({"ok": True, "state": reached, "version": machine.instance_id, "event_id": event["id"]})


async def machines_list_events(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    limit = _int(request, "limit", 20)
    if not 1 <= limit <= 50:
        raise bad_request("limit: must be between 1 and 50")
    return web.json_response(fleet.machine(app_name, machine_id).events_json(limit))


async def machines_restart(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    fleet.machine(app_name, machine_id)
    body = {k: request.query[k] for k in ("signal", "timeout") if request.query.get(k)}
    await fleet.restart(app_name, machine_id, request.headers.get(NONCE_HEADER), body)
    return _ok()


async def apps_delete(request: web.Request) -> web.Response:
    fleet = request.app[_FLEET]
    fleet.delete_app(request.match_info["app_name"])
    return web.Response(status=202)


# -- secrets ---------------------------------------------------------------------------


async def secrets_list(request: web.Request) -> web.Response:
    app = request.app[_FLEET].app(request.match_info["app_name"])
    show = _flag(request, "show_secrets")
    return web.json_response({"secrets": [app.secret_json(name, show) for name in sorted(app.secrets)]})


async def secrets_update(request: web.Request) -> web.Response:
    app = request.app[_FLEET].app(request.match_info["app_name"])
    body = await _body(request, required=True)
    values = body.get("values") if isinstance(body, dict) else None
    if not isinstance(values, dict) or not all(
        isinstance(k, str) and k and (v is None or isinstance(v, str)) for k, v in values.items()
    ):
        raise bad_request("values: expected an object of secret name -> string (or null to unset)")
    version = app.set_secrets(values)
    return web.json_response({"secrets": [app.secret_json(n, False) for n in sorted(app.secrets)], "version": version})


async def secret_get(request: web.Request) -> web.Response:
    app = request.app[_FLEET].app(request.match_info["app_name"])
    name = request.match_info["secret_name"]
    if name not in app.secrets:
        raise ApiError(404, f"secret not found: {name}")
    return web.json_response(app.secret_json(name, _flag(request, "show_secrets")))


async def secret_create(request: web.Request) -> web.Response:
    app = request.app[_FLEET].app(request.match_info["app_name"])
    name = request.match_info["secret_name"]
    body = await _body(request, required=True)
    value = body.get("value") if isinstance(body, dict) else None
    if not isinstance(value, str):
        raise bad_request("value: expected a string")
    version = app.set_secrets({name: value})
    return web.json_response({**app.secret_json(name, False), "version": version}, status=201)


async def secret_delete(request: web.Request) -> web.Response:
    app = request.app[_FLEET].app(request.match_info["app_name"])
    name = request.match_info["secret_name"]
    if name not in app.secrets:
        raise ApiError(404, f"secret not found: {name}")
    return web.json_response({"version": app.set_secrets({name: None})})


# -- metadata --------------------------------------------------------------------------


async def metadata_show(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    return web.json_response(fleet.metadata(app_name, machine_id))


async def metadata_get_key(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    key = request.match_info["key"]
    metadata = fleet.metadata(app_name, machine_id)
    if key not in metadata:
        raise ApiError(404, f"metadata key not found: {key}")
    return web.json_response({"value": metadata[key]})


async def metadata_upsert(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    fleet.machine(app_name, machine_id)
    body = await _body(request, required=True)
    value = body.get("value") if isinstance(body, dict) else None
    if not isinstance(value, str):
        raise bad_request("value: expected a string")
    fleet.set_metadata(app_name, machine_id, request.headers.get(NONCE_HEADER), request.match_info["key"], value)
    return web.Response(status=204)


async def metadata_delete(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    fleet.machine(app_name, machine_id)
    fleet.set_metadata(app_name, machine_id, request.headers.get(NONCE_HEADER), request.match_info["key"], None)
    return web.Response(status=204)


# -- leases ----------------------------------------------------------------------------


async def lease_create(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    fleet.machine(app_name, machine_id)
    ttl, description = parse_lease_request(await _body(request, required=False), fleet.options.default_lease_ttl_s)
    lease = fleet.create_lease(app_name, machine_id, request.headers.get(NONCE_HEADER), ttl, description)
    return web.json_response(lease.to_json(), status=201)


async def lease_show(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    return web.json_response(fleet.get_lease(app_name, machine_id).to_json())


async def lease_release(request: web.Request) -> web.Response:
    fleet, app_name, machine_id = _ids(request)
    nonce = request.headers.get(NONCE_HEADER)
    if not nonce:
        raise bad_request(f"{NONCE_HEADER} header required")
    fleet.release_lease(app_name, machine_id, nonce)
    return _ok()


#: (method, path, handler, spec operation ID) of every route served.
ROUTES: tuple[tuple[str, str, Handler, str], ...] = (
    ("GET", "/v1/apps", apps_list, "Apps_list"),
    ("POST", "/v1/apps", apps_create, "Apps_create"),
    ("GET", "/v1/apps/{app_name}", apps_show, "Apps_show"),
    ("DELETE", "/v1/apps/{app_name}", apps_delete, "Apps_delete"),
    ("GET", "/v1/apps/{app_name}/secrets", secrets_list, "Secrets_list"),
    ("POST", "/v1/apps/{app_name}/secrets", secrets_update, "Secrets_update"),
    ("GET", "/v1/apps/{app_name}/secrets/{secret_name}", secret_get, "Secret_get"),
    ("POST", "/v1/apps/{app_name}/secrets/{secret_name}", secret_create, "Secret_create"),
    ("DELETE", "/v1/apps/{app_name}/secrets/{secret_name}", secret_delete, "Secret_delete"),
    ("POST", "/v1/apps/{app_name}/machines/{machine_id}/restart", machines_restart, "Machines_restart"),
    ("GET", "/v1/apps/{app_name}/machines/{machine_id}/metadata", metadata_show, "Machines_show_metadata"),
    ("GET", "/v1/apps/{app_name}/machines/{machine_id}/metadata/{key}", metadata_get_key, "Machines_get_metadata_key"),
    ("POST", "/v1/apps/{app_name}/machines/{machine_id}/metadata/{key}", metadata_upsert, "Machines_upsert_metadata"),
    ("DELETE", "/v1/apps/{app_name}/machines/{machine_id}/metadata/{key}", metadata_delete, "Machines_delete_metadata"),
    ("GET", "/v1/apps/{app_name}/machines", machines_list, "Machines_list"),
    ("POST", "/v1/apps/{app_name}/machines", machines_create, "Machines_create"),
    ("GET", "/v1/apps/{app_name}/machines/{machine_id}", machines_show, "Machines_show"),
    ("POST", "/v1/apps/{app_name}/machines/{machine_id}", machines_update, "Machines_update"),
    ("DELETE", "/v1/apps/{app_name}/machines/{machine_id}", machines_delete, "Machines_delete"),
    ("POST", "/v1/apps/{app_name}/machines/{machine_id}/stop", machines_stop, "Machines_stop"),
    ("POST", "/v1/apps/{app_name}/machines/{machine_id}/start", machines_start, "Machines_start"),
    ("GET", "/v1/apps/{app_name}/machines/{machine_id}/wait", machines_wait, "Machines_wait"),
    ("GET", "/v1/apps/{app_name}/machines/{machine_id}/events", machines_list_events, "Machines_list_events"),
    ("POST", "/v1/apps/{app_name}/machines/{machine_id}/lease", lease_create, "Machines_create_lease"),
    ("GET", "/v1/apps/{app_name}/machines/{machine_id}/lease", lease_show, "Machines_show_lease"),
    ("DELETE", "/v1/apps/{app_name}/machines/{machine_id}/lease", lease_release, "Machines_release_lease"),
)


async def _identifier(request: web.Request) -> str:
    """What Fly's limits are counted per: the Machine, else the app (for ``Apps_create`` the app
    being created), else the org (``Apps_list``)."""
    identifier = request.match_info.get("machine_id") or request.match_info.get("app_name")
    if identifier:
        return identifier
    if request.method == "POST":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("app_name") or body.get("name"), str):
            return body.get("app_name") or body["name"]
    return request.query.get("org_slug", "")


def _rate_limited(handler: Handler, operation: str, limiter: RequestLimiter) -> Handler:
    async def limited(request: web.Request) -> web.StreamResponse:
        await limiter.admit(operation, await _identifier(request))
        return await handler(request)

    return limited


def build_app(fleet: Fleet, token: str, limiter: RequestLimiter | None = None) -> web.Application:
    """The aiohttp application serving ``fleet`` behind ``token`` (``Authorization: Bearer <token>``
    or ``FlyV1 <token>``); with ``limiter``, Fly's per-action rate limits (429)."""
    if not token:
        raise ValueError("token must not be empty")
    app = web.Application(middlewares=[_errors, _auth])
    app[_FLEET] = fleet
    app[_TOKEN] = token
    for method, path, handler, operation in ROUTES:
        app.router.add_route(method, path, _rate_limited(handler, operation, limiter) if limiter else handler)
    return app
