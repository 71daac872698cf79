"""Parsing and validation of request bodies and of the Machine config fields the engine acts on.

Shapes are the spec's (``/work/shared/specs/fly-machines-openapi.json``):
``CreateMachineRequest``, ``UpdateMachineRequest``, ``StopRequest``, ``CreateLeaseRequest``
and ``fly.MachineConfig``. Fields the engine does not act on are kept verbatim and echoed
back in the Machine's ``config``, as Fly does. Every violation raises :class:`ApiError` 400
with a message naming the field.
"""

from __future__ import annotations

import copy
import re
import signal as _signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._errors import bad_request

__all__ = [
    "DEFAULT_GUEST",
    "CreateRequest",
    "RestartPolicy",
    "StopSpec",
    "UpdateRequest",
    "parse_create_request",
    "parse_duration_s",
    "parse_lease_request",
    "parse_stop_request",
    "parse_update_request",
    "restart_policy",
    "stop_spec",
]

#: Guest Fly gives a Machine created without one (shared-cpu-1x, 256 MB).
DEFAULT_GUEST: Mapping[str, Any] = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}
#: Restart policies of spec schema ``fly.MachineRestart``.
RESTART_POLICIES = ("no", "always", "on-failure", "spot-price")
#: Restarts allowed under ``on-failure`` when ``max_retries`` is not given (engine default).
DEFAULT_MAX_RETRIES = 10
#: Signals of spec schemas ``StopRequest`` / ``fly.StopConfig``.
STOP_SIGNALS = ("SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM")

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class CreateRequest:
    """A parsed ``CreateMachineRequest`` (spec operation ``Machines_create``)."""

    config: dict[str, Any]
    name: str | None
    region: str | None
    skip_launch: bool
    lease_ttl_s: int | None
    min_secrets_version: int | None = None
    skip_secrets: bool = False


@dataclass(frozen=True)
class UpdateRequest:
    """A parsed ``UpdateMachineRequest`` (spec operation ``Machines_update``)."""

    config: dict[str, Any]
    skip_launch: bool
    lease_ttl_s: int | None
    current_version: str | None
    min_secrets_version: int | None = None
    skip_secrets: bool = False


@dataclass(frozen=True)
class RestartPolicy:
    """``config.restart``: ``policy`` (``no``/``always``/``on-failure``) and ``max_retries``.

    ``spot-price`` has no meaning locally and behaves as ``no``.
    """

    policy: str
    max_retries: int

    def should_restart(self, exit_code: int, restarts_so_far: int) -> bool:
        """Whether an unrequested exit with ``exit_code`` is followed by a restart."""
        if self.policy == "always":
            return True
        if self.policy == "on-failure":
            return exit_code != 0 and restarts_so_far < self.max_retries
        return False


@dataclass(frozen=True)
class StopSpec:
    """How to stop a Machine: ``signal`` first, SIGKILL after ``timeout_s`` seconds."""

    signal: _signal.Signals
    timeout_s: float


def _require_object(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise bad_request(f"{field}: expected a JSON object")
    return value


def _optional(body: Mapping[str, Any], field: str, kind: type | tuple[type, ...], label: str) -> Any:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise bad_request(f"{field}: expected {label}")
    return value


def _string_list(value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise bad_request(f"{field}: expected an array of strings")


def _string_map(value: Any, field: str) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request(f"{field}: expected an object of string values")


def _positive_int(value: Any, field: str, *, allow_zero: bool = False) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < (0 if allow_zero else 1):
        raise bad_request(f"{field}: expected a {'non-negative' if allow_zero else 'positive'} integer")


def parse_duration_s(value: Any, field: str = "timeout") -> float:
    """Seconds from a Go duration string (``"10s"``, ``"1m30s"``, ``"500ms"``), digits or a number.

    Raises ApiError 400 on anything else.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise bad_request(f"{field}: must not be negative")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return float(text)
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text:
            return sum(float(n) * _UNIT_S[u] for n, u in parts)
    raise bad_request(f"{field}: invalid duration {value!r} (expected e.g. \"10s\")")


def validate_config(raw: Any) -> dict[str, Any]:
    """A validated, normalised deep copy of a ``fly.MachineConfig`` (guest defaults filled in)."""
    config = copy.deepcopy(_require_object(raw, "config"))
    image = config.get("image")
    if not isinstance(image, str) or not image.strip():
        raise bad_request("config.image: required, a non-empty string")
    _string_map(config.get("env"), "config.env")
    _string_map(config.get("metadata"), "config.metadata")
    guest = config.get("guest")
    if guest is not None:
        _require_object(guest, "config.guest")
        _positive_int(guest.get("cpus"), "config.guest.cpus")
        _positive_int(guest.get("memory_mb"), "config.guest.memory_mb")
        if guest.get("cpu_kind") is not None and not isinstance(guest["cpu_kind"], str):
            raise bad_request("config.guest.cpu_kind: expected a string")
    config["guest"] = {**DEFAULT_GUEST, **{k: v for k, v in (guest or {}).items() if v not in (None, "", 0)}}
    init = config.get("init")
    if init is not None:
        _require_object(init, "config.init")
        for key in ("cmd", "entrypoint", "exec"):
            _string_list(init.get(key), f"config.init.{key}")
    restart = config.get("restart")
    if restart is not None:
        _require_object(restart, "config.restart")
        policy = restart.get("policy")
        if policy not in (None, "", *RESTART_POLICIES):
            raise bad_request(f"config.restart.policy: expected one of {', '.join(RESTART_POLICIES)}")
        _positive_int(restart.get("max_retries"), "config.restart.max_retries", allow_zero=True)
    stop_config = config.get("stop_config")
    if stop_config is not None:
        _require_object(stop_config, "config.stop_config")
        if stop_config.get("signal") not in (None, "", *STOP_SIGNALS):
            raise bad_request(f"config.stop_config.signal: expected one of {', '.join(STOP_SIGNALS)}")
        if stop_config.get("timeout") is not None:
            parse_duration_s(stop_config["timeout"], "config.stop_config.timeout")
    services = config.get("services")
    if services is not None:
        if not isinstance(services, list) or not all(isinstance(s, dict) for s in services):
            raise bad_request("config.services: expected an array of objects")
        for i, service in enumerate(services):
            _positive_int(service.get("internal_port"), f"config.services[{i}].internal_port")
    if config.get("auto_destroy") is not None and not isinstance(config["auto_destroy"], bool):
        raise bad_request("config.auto_destroy: expected a boolean")
    _validate_checks(config.get("checks"))
    return config


#: Check types the engine runs (spec schema ``fly.MachineCheck`` ``type``: "tcp or http").
CHECK_TYPES = ("http", "tcp")


def _validate_checks(checks: Any) -> None:
    if checks is None:
        return
    _require_object(checks, "config.checks")
    for name, check in checks.items():
        field = f"config.checks.{name}"
        _require_object(check, field)
        kind = check.get("type") or "http"
        if kind not in CHECK_TYPES:
            raise bad_request(f"{field}.type: expected one of {', '.join(CHECK_TYPES)}")
        port = check.get("port")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            raise bad_request(f"{field}.port: required, an integer 1..65535")
        for key in ("interval", "timeout"):
            if check.get(key) not in (None, "") and parse_duration_s(check[key], f"{field}.{key}") <= 0:
                raise bad_request(f"{field}.{key}: must be positive")
        if check.get("grace_period") not in (None, ""):
            parse_duration_s(check["grace_period"], f"{field}.grace_period")
        path = check.get("path")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise bad_request(f"{field}.path: expected a path starting with /")
        if check.get("method") is not None and not isinstance(check["method"], str):
            raise bad_request(f"{field}.method: expected a string")
        if check.get("protocol") not in (None, "", "http", "https"):
            raise bad_request(f"{field}.protocol: expected http or https")
        headers = check.get("headers")
        if headers is not None and not (
            isinstance(headers, list)
            and all(isinstance(h, dict) and isinstance(h.get("name"), str) for h in headers)
            and all(isinstance(v, str) for h in headers for v in (h.get("values") or []))
        ):
            raise bad_request(f"{field}.headers: expected an array of {{name, values}} objects")


def _common(body: Any) -> tuple[dict[str, Any], dict[str, Any], bool, int | None]:
    body = _require_object(body, "body")
    if "config" not in body:
        raise bad_request("config: required")
    config = validate_config(body["config"])
    skip_launch = bool(_optional(body, "skip_launch", bool, "a boolean"))
    lease_ttl = _lease_ttl(_optional(body, "lease_ttl", int, "an integer (seconds)"), "lease_ttl")
    return body, config, skip_launch, lease_ttl


def parse_create_request(body: Any) -> CreateRequest:
    """Validate a ``CreateMachineRequest`` body. Raises ApiError 400."""
    body, config, skip_launch, lease_ttl = _common(body)
    return CreateRequest(
        config=config,
        name=_optional(body, "name", str, "a string") or None,
        region=_optional(body, "region", str, "a string") or None,
        skip_launch=skip_launch,
        lease_ttl_s=lease_ttl,
        **_secrets_options(body),
    )


def parse_update_request(body: Any) -> UpdateRequest:
    """Validate an ``UpdateMachineRequest`` body. Raises ApiError 400."""
    body, config, skip_launch, lease_ttl = _common(body)
    return UpdateRequest(
        config=config,
        skip_launch=skip_launch,
        lease_ttl_s=lease_ttl,
        current_version=_optional(body, "current_version", str, "a string") or None,
        **_secrets_options(body),
    )


def _secrets_options(body: Mapping[str, Any]) -> dict[str, Any]:
    version = _optional(body, "min_secrets_version", int, "an integer (an app secrets version)")
    if version is not None and version < 0:
        raise bad_request("min_secrets_version: must not be negative")
    return {
        "min_secrets_version": version,
        "skip_secrets": bool(_optional(body, "skip_secrets", bool, "a boolean")),
    }


def _signal_named(name: str) -> _signal.Signals:
    return _signal.Signals[name]


def stop_spec(config: Mapping[str, Any], default_signal: str, default_timeout_s: float) -> StopSpec:
    """Stop signal and timeout from ``config.stop_config`` with the engine's defaults."""
    stop_config = config.get("stop_config") or {}
    name = stop_config.get("signal") or default_signal
    timeout = stop_config.get("timeout")
    timeout_s = parse_duration_s(timeout) if timeout not in (None, "") else default_timeout_s
    return StopSpec(_signal_named(name), timeout_s)


def parse_stop_request(body: Any, base: StopSpec) -> StopSpec:
    """Apply an optional ``StopRequest`` body (``signal``, ``timeout``) over ``base``."""
    if body is None:
        return base
    body = _require_object(body, "body")
    name = body.get("signal")
    if name not in (None, "") and name not in STOP_SIGNALS:
        raise bad_request(f"signal: expected one of {', '.join(STOP_SIGNALS)}")
    timeout = body.get("timeout")
    return StopSpec(
        _signal_named(name) if name else base.signal,
        parse_duration_s(timeout) if timeout not in (None, "") else base.timeout_s,
    )


MAX_LEASE_TTL_S = 365 * 24 * 3600
"""The longest lease this engine grants (one year). The spec types ``ttl`` as an
integer of seconds and says no more; an unbounded one made ``expires_at`` a date
past year 9999, which broke every later request on the machine."""


def _lease_ttl(value: int | None, field: str) -> int | None:
    if value is not None and not 1 <= value <= MAX_LEASE_TTL_S:
        raise bad_request(f"{field}: must be 1..{MAX_LEASE_TTL_S} seconds, got {value}")
    return value


def parse_lease_request(body: Any, default_ttl_s: int) -> tuple[int, str]:
    """``(ttl_s, description)`` from a ``CreateLeaseRequest`` body (``ttl`` 1..:data:`MAX_LEASE_TTL_S`). Raises ApiError 400."""
    body = _require_object(body if body is not None else {}, "body")
    ttl = _lease_ttl(_optional(body, "ttl", int, "an integer (seconds)"), "ttl")
    description = _optional(body, "description", str, "a string") or ""
    return (ttl or default_ttl_s), description


def restart_policy(config: Mapping[str, Any]) -> RestartPolicy:
    """The Machine's restart policy; ``on-failure`` when none is set (Fly's default)."""
    restart = config.get("restart") or {}
    policy = restart.get("policy") or "on-failure"
    if policy == "spot-price":
        policy = "no"
    max_retries = restart.get("max_retries")
    return RestartPolicy(policy, DEFAULT_MAX_RETRIES if max_retries is None else max_retries)
