"""Request parsing, command resolution, image references and identifiers."""

from __future__ import annotations

import re
import signal

import pytest

from fly_engine._config import (
    RestartPolicy,
    StopSpec,
    parse_create_request,
    parse_duration_s,
    parse_stop_request,
    restart_policy,
    stop_spec,
)
from fly_engine._errors import ApiError
from fly_engine._ids import new_event_id, new_machine_id, new_machine_name, new_nonce, new_version
from fly_engine._process import ExitStatus, image_ref, resolve_command

IMAGES = {"trader-machines": ["trader-machine"], "example/app:2": ["app", "--v2"]}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("1m30s", 90.0), ("500ms", 0.5), ("1h", 3600.0), ("7", 7.0), (3, 3.0), (0.25, 0.25)],
)
def test_durations(text, seconds):
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "-1", "10 s", "s", "1.5.2s", True, None, -2])
def test_bad_durations(text):
    with pytest.raises(ApiError) as err:
        parse_duration_s(text)
    assert err.value.status == 400


@pytest.mark.parametrize(
    ("config", "argv"),
    [
        ({"image": "x", "init": {"exec": ["/bin/a"], "cmd": ["b"]}}, ["/bin/a"]),
        ({"image": "x", "init": {"entrypoint": ["ep"], "cmd": ["--flag"]}}, ["ep", "--flag"]),
        ({"image": "x", "init": {"cmd": ["trader-machine"]}}, ["trader-machine"]),
        ({"image": "registry.fly.io/trader-machines:deployment-7"}, ["trader-machine"]),
        ({"image": "registry.fly.io/trader-machines@sha256:ab"}, ["trader-machine"]),
        ({"image": "example/app:2"}, ["app", "--v2"]),
        ({"image": "example/app:3"}, ["default"]),
    ],
)
def test_resolve_command(config, argv):
    assert resolve_command(config, IMAGES, ["default"]) == argv


def test_resolve_command_without_any_command_is_a_400():
    with pytest.raises(ApiError, match="no command known"):
        resolve_command({"image": "example/app:3"}, IMAGES, [])


@pytest.mark.parametrize(
    ("image", "registry", "repository", "tag"),
    [
        ("registry.fly.io/trader-machines:deployment-7", "registry.fly.io", "trader-machines", "deployment-7"),
        ("flyio/fastify-functions", "registry-1.docker.io", "flyio/fastify-functions", "latest"),
        ("ubuntu:22.04", "registry-1.docker.io", "library/ubuntu", "22.04"),
        ("localhost:5000/app", "localhost:5000", "app", "latest"),
    ],
)
def test_image_ref(image, registry, repository, tag):
    ref = image_ref(image)
    assert (ref["registry"], ref["repository"], ref["tag"]) == (registry, repository, tag)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", ref["digest"])


def test_image_ref_keeps_a_given_digest():
    ref = image_ref("registry.fly.io/app@sha256:abc")
    assert ref["digest"] == "sha256:abc" and "tag" not in ref


def test_create_request_fills_the_guest_and_keeps_unknown_fields():
    request = parse_create_request(
        {"name": "m", "region": "ams", "config": {"image": "a", "guest": {"memory_mb": 1024}, "dns": {"x": 1}}}
    )
    assert request.config["guest"] == {"cpu_kind": "shared", "cpus": 1, "memory_mb": 1024}
    assert request.config["dns"] == {"x": 1}
    assert (request.name, request.region, request.skip_launch, request.lease_ttl_s) == ("m", "ams", False, None)


def test_restart_policies():
    assert restart_policy({}) == RestartPolicy("on-failure", 10)
    assert restart_policy({"restart": {"policy": "spot-price"}}).policy == "no"
    on_failure = RestartPolicy("on-failure", 2)
    assert [on_failure.should_restart(1, n) for n in range(3)] == [True, True, False]
    assert not on_failure.should_restart(0, 0)
    assert RestartPolicy("always", 0).should_restart(0, 99)
    assert not RestartPolicy("no", 5).should_restart(1, 0)


def test_stop_specs():
    base = stop_spec({"stop_config": {"signal": "SIGINT", "timeout": "30s"}}, "SIGTERM", 5.0)
    assert base == StopSpec(signal.SIGINT, 30.0)
    assert stop_spec({}, "SIGTERM", 5.0) == StopSpec(signal.SIGTERM, 5.0)
    assert parse_stop_request({"signal": "SIGKILL"}, base) == StopSpec(signal.SIGKILL, 30.0)
    assert parse_stop_request(None, base) == base
    with pytest.raises(ApiError):
        parse_stop_request({"signal": "SIGSEGV"}, base)


def test_exit_status_of_a_signal():
    status = ExitStatus.from_returncode(-9)
    assert (status.exit_code, status.signal) == (137, 9)
    assert status.exit_event(requested_stop=True, restarting=False)["signal"] == 9


def test_identifiers_have_fly_formats():
    assert re.fullmatch(r"[0-9a-f]{14}", new_machine_id())
    assert re.fullmatch(r"[0-9a-f]{12}", new_nonce())
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d{4}", new_machine_name())
    ids = [new_event_id() for _ in range(200)] + [new_version()]
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", i) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # monotonic within a millisecond
