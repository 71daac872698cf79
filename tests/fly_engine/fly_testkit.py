"""Test helpers for the local machines engine and the Fly client.

- :class:`Spec` loads ``../shared/specs/fly-machines-openapi.json`` and validates request
  and response bodies against its schemas (``$ref`` resolved; strict: objects with
  declared properties get ``additionalProperties: false``, so a field the spec does not
  know fails).
- Contract checks with openapi-core on top: each request's method, path, path and query
  parameters, headers and body, and each documented response, as the spec declares them
  (the spec's duplicated operationId ``Machines_update_metadata`` is renamed for ``PATCH``
  in memory; ``../shared`` is never written).
- :class:`SpecCheckingTransport` is an httpx transport that validates every request
  sent and every response received on the real loopback connection.
- :func:`eventually` polls a condition until a deadline (no sleeps as synchronisation).
- Machine process scripts (tiny ``python -c`` programs).

Loaded by path from ``tests/control_plane/test_fly_client.py`` too.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from openapi_core import OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.testing import MockRequest, MockResponse

REPO = Path(__file__).resolve().parents[2]
SPEC_PATH = REPO.parent / "shared" / "specs" / "fly-machines-openapi.json"
TOKEN = "test-token"
APP = "test-app"

# -- machine process scripts ------------------------------------------------------------

#: Sleeps until signalled (default SIGTERM handling: dies).
SLEEP = "import time; time.sleep(600)"
#: Writes its environment as JSON to $OUT, then sleeps.
ENV_DUMP_AND_SLEEP = (
    "import json, os, pathlib, time; "
    "p = pathlib.Path(os.environ['OUT']); t = p.with_suffix('.tmp'); "
    "t.write_text(json.dumps(dict(os.environ))); t.replace(p); time.sleep(600)"
)
#: Appends a line to $OUT, then exits with $CODE.
COUNT_AND_EXIT = (
    "import os, sys; open(os.environ['OUT'], 'a').write('run\\n'); sys.exit(int(os.environ['CODE']))"
)
#: Ignores SIGTERM, says so in $OUT, sleeps.
IGNORE_SIGTERM = (
    "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "open(os.environ['OUT'], 'w').write('ready'); time.sleep(600)"
)
#: Exits 0 on SIGUSR1 after writing the signal name to $OUT. (os._exit: a SystemExit raised
#: while a file object is being finalised would be swallowed.)
EXIT_ON_SIGUSR1 = (
    "import os, signal, time\n"
    "def h(n, f):\n"
    "    with open(os.environ['OUT'], 'w') as fh: fh.write(signal.Signals(n).name)\n"
    "    os._exit(0)\n"
    "signal.signal(signal.SIGUSR1, h)\n"
    "with open(os.environ['OUT'] + '.ready', 'w') as fh: fh.write('ready')\n"
    "time.sleep(600)\n"
)
#: Serves HTTP on 127.0.0.1:$HTTP_PORT answering its machine ID.
HTTP_SERVER = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = os.environ['FLY_MACHINE_ID'].encode()\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer(('127.0.0.1', int(os.environ['HTTP_PORT'])), H).serve_forever()\n"
)
#: Serves HTTP on 127.0.0.1:$HTTP_PORT: GET /health answers $STATUS, anything else 404.
HEALTH_SERVER = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        code = int(os.environ['STATUS']) if self.path == '/health' else 404\n"
    "        body = b'health says %d' % code\n"
    "        self.send_response(code); self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "http.server.HTTPServer(('127.0.0.1', int(os.environ['HTTP_PORT'])), H).serve_forever()\n"
)
#: Touches its memory up to $MB megabytes, then sleeps.
ALLOCATE = "import os, time; x = b'x' * (int(os.environ['MB']) << 20); time.sleep(600)"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def py(script: str) -> list[str]:
    """argv running ``script`` with this interpreter."""
    return [sys.executable, "-c", script]


async def eventually(
    check: Callable[[], Any] | Callable[[], Awaitable[Any]], timeout_s: float = 10.0, interval_s: float = 0.02
) -> Any:
    """Poll ``check`` until it returns a truthy value; that value. Fails after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        await asyncio.sleep(interval_s)


# -- spec validation --------------------------------------------------------------------


def _strict(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _strict(v) for k, v in node.items()}
        if node.get("type") == "object" and "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        return node
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def _openapi(doc: dict[str, Any]) -> OpenAPI:
    """openapi-core's view of the spec, with its one duplicated operationId made unique."""
    doc = copy.deepcopy(doc)
    patch = doc["paths"]["/v1/apps/{app_name}/machines/{machine_id}/metadata"].get("patch")
    if patch is not None and patch.get("operationId") == "Machines_update_metadata":
        patch["operationId"] = "Machines_patch_metadata"
    return OpenAPI.from_dict(doc)


class Spec:
    """The Fly Machines OpenAPI document, for validation in tests."""

    def __init__(self, path: Path = SPEC_PATH) -> None:
        self.doc = json.loads(path.read_text(encoding="utf-8"))
        self.openapi = _openapi(self.doc)
        self.server = self.doc["servers"][0]["url"]
        self._components = _strict(copy.deepcopy(self.doc["components"]))
        self._routes = []
        for template, item in self.doc["paths"].items():
            pattern = re.compile("^" + re.sub(r"\{[^/}]+\}", "[^/]+", template) + "$")
            self._routes.append((template.count("{"), template, pattern, item))
        self._routes.sort(key=lambda r: r[0])

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        """``(path template, operation)`` for a concrete request. AssertionError if not in the spec."""
        for _, template, pattern, item in self._routes:
            if pattern.match(path) and method.lower() in item:
                return template, item[method.lower()]
        raise AssertionError(f"{method} {path} is not an operation of the spec")

    def validate(self, schema: dict[str, Any], instance: Any, where: str) -> None:
        validator = jsonschema.Draft4Validator({"allOf": [_strict(schema)], "components": self._components})
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        if errors:
            details = "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
            raise AssertionError(f"{where}: body does not match the spec: {details}\n{json.dumps(instance)[:2000]}")

    def schema_ref(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    @staticmethod
    def _json_schema(content: dict[str, Any] | None) -> dict[str, Any] | None:
        return ((content or {}).get("application/json") or {}).get("schema")

    def contract_request(self, request: httpx.Request, body: bytes) -> MockRequest:
        """Validate a request's parameters, headers and body with openapi-core; AssertionError if invalid."""
        mock = MockRequest(
            self.server, request.method.lower(), request.url.path,
            args=dict(request.url.params), headers=dict(request.headers), data=body or None,
            content_type=request.headers.get("content-type", "application/json").split(";")[0],
        )
        try:
            self.openapi.validate_request(mock)
        except OpenAPIError as exc:
            raise AssertionError(f"request {request.method} {request.url} breaks the spec: {exc} {exc.__cause__ or ''}")
        return mock

    def contract_response(self, request: MockRequest, status: int, body: bytes, content_type: str) -> None:
        """Validate a response whose status the operation documents with a body, with openapi-core."""
        _template, op = self.operation(request.method, request.path)
        documented = op.get("responses", {}).get(str(status))
        if documented is None or not documented.get("content"):
            return  # errors: ErrorResponse (check_response); no documented body: nothing to compare
        try:
            self.openapi.validate_response(request, MockResponse(body, status_code=status, content_type=content_type))
        except OpenAPIError as exc:
            raise AssertionError(f"response {status} to {request.method} {request.path} breaks the spec: {exc} "
                                 f"{exc.__cause__ or ''}")

    def check_request(self, method: str, path: str, body: bytes) -> str:
        """Validate a request body; the operation ID."""
        template, op = self.operation(method, path)
        schema = self._json_schema((op.get("requestBody") or {}).get("content"))
        if body:
            assert schema is not None, f"{op['operationId']} takes no request body"
            self.validate(schema, json.loads(body), f"request {op['operationId']}")
        return op["operationId"]

    def check_response(self, method: str, path: str, status: int, body: bytes) -> str:
        """Validate a response body: the documented schema for ``status``, or
        ``ErrorResponse`` for errors; the operation ID."""
        template, op = self.operation(method, path)
        where = f"response {op['operationId']} {status}"
        if status >= 400:
            error = json.loads(body)
            self.validate(self.schema_ref("ErrorResponse"), error, where)
            assert isinstance(error.get("error"), str) and error["error"], f"{where}: no error message"
            return op["operationId"]
        responses = op.get("responses", {})
        assert str(status) in responses, f"{where}: status {status} is not documented for this operation"
        schema = self._json_schema(responses[str(status)].get("content"))
        if schema is not None:
            self.validate(schema, json.loads(body), where)
        elif body:
            json.loads(body)  # undocumented body: must still be JSON
        return op["operationId"]


class SpecCheckingTransport(httpx.AsyncBaseTransport):
    """Real HTTP transport that validates each request and response body against the spec
    (requests only with ``check_requests``, off for tests that send invalid bodies on purpose).

    ``checked`` lists ``(operation ID, status)`` of every validated exchange.
    """

    def __init__(self, spec: Spec, *, check_requests: bool = True) -> None:
        self._spec = spec
        self._check_requests = check_requests
        self._inner = httpx.AsyncHTTPTransport()
        self.checked: list[tuple[str, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        if self._check_requests:
            self._spec.check_request(request.method, request.url.path, body)
            contract = self._spec.contract_request(request, body)
        response = await self._inner.handle_async_request(request)
        content = await response.aread()
        await response.aclose()
        operation = self._spec.check_response(request.method, request.url.path, response.status_code, content)
        if self._check_requests:
            content_type = response.headers.get("content-type", "application/json").split(";")[0]
            self._spec.contract_response(contract, response.status_code, content, content_type)
        self.checked.append((operation, response.status_code))
        dropped = ("content-encoding", "transfer-encoding")
        headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in dropped]
        return httpx.Response(response.status_code, headers=headers, content=content, request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()


# -- raw API shortcuts ------------------------------------------------------------------

MACHINES = f"/v1/apps/{APP}/machines"


async def create_machine(api: httpx.AsyncClient, argv: list[str], *, env: dict[str, str] | None = None,
                         restart: str = "no", config: dict[str, Any] | None = None, **body: Any) -> dict[str, Any]:
    """``Machines_create`` running ``argv``; the Machine JSON."""
    machine_config: dict[str, Any] = {"image": "example/app:1", "init": {"cmd": argv}, "restart": {"policy": restart}}
    if env is not None:
        machine_config["env"] = env
    machine_config.update(config or {})
    response = await api.post(MACHINES, json={"config": machine_config, **body})
    assert response.status_code == 200, response.text
    return response.json()


async def wait_state(api: httpx.AsyncClient, machine_id: str, state: str, timeout: int = 15,
                     **params: Any) -> dict[str, Any]:
    """``Machines_wait`` that must succeed; the WaitMachineResponse."""
    response = await api.get(f"{MACHINES}/{machine_id}/wait", params={"state": state, "timeout": timeout, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def show(api: httpx.AsyncClient, machine_id: str) -> dict[str, Any]:
    response = await api.get(f"{MACHINES}/{machine_id}")
    assert response.status_code == 200, response.text
    return response.json()


def exits(machine: dict[str, Any]) -> list[dict[str, Any]]:
    """``exit_event`` objects of a Machine's exit events, oldest first."""
    return [e["request"]["exit_event"] for e in reversed(machine["events"]) if e["type"] == "exit"]
