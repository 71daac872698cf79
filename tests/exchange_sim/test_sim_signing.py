"""SIGNED request checks: Binance's own HMAC example, Ed25519 keys, the timing rule, each error code."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from exchange_sim._errors import BinanceAPIError
from exchange_sim._signing import ApiKey, authenticate, check_timing, split_signature

# The HMAC example of Binance's spot API docs ("SIGNED request example (HMAC)").
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_PARAMS = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
NOW = 1499827319559 + 100


def code_of(call, *args, **kwargs) -> tuple[int, str]:
    with pytest.raises(BinanceAPIError) as err:
        call(*args, **kwargs)
    return err.value.code, err.value.msg


@pytest.fixture
def keys():
    return {DOC_KEY: ApiKey.hmac(DOC_KEY, DOC_SECRET, account="alice")}


def test_binance_s_hmac_example_verifies_in_the_query_the_body_or_split_between_them(keys):
    key, params = authenticate(keys, DOC_KEY, f"{DOC_PARAMS}&signature={DOC_SIGNATURE}", "", NOW)
    assert key.account == "alice" and params["price"] == "0.1" and params["symbol"] == "LTCBTC"
    assert authenticate(keys, DOC_KEY, "", f"{DOC_PARAMS}&signature={DOC_SIGNATURE.upper()}", NOW)[0] is key
    # mixed: the query string then the body, concatenated as sent
    query, body = DOC_PARAMS.split("&quantity")
    mixed = hmac.new(DOC_SECRET.encode(), (query + "quantity" + body).encode(), hashlib.sha256).hexdigest()
    assert authenticate(keys, DOC_KEY, query, f"quantity{body}&signature={mixed}", NOW)[1]["quantity"] == "1"


@pytest.mark.parametrize(("api_key", "query", "expected"), [
    (None, f"{DOC_PARAMS}&signature={DOC_SIGNATURE}", (-2014, "API-key format invalid.")),
    ("unknown", f"{DOC_PARAMS}&signature={DOC_SIGNATURE}", (-2015, "Invalid API-key, IP, or permissions for action.")),
    (DOC_KEY, DOC_PARAMS, (-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")),
    (DOC_KEY, DOC_PARAMS.replace("price=0.1", "price=0.2") + f"&signature={DOC_SIGNATURE}",
     (-1022, "Signature for this request is not valid.")),
])
def test_a_request_without_a_valid_key_or_signature_is_refused_with_binance_s_code(keys, api_key, query, expected):
    assert code_of(authenticate, keys, api_key, query, "", NOW) == expected


def test_the_timing_rule():
    ok = {"timestamp": "1000000"}
    check_timing(ok, 1_000_000 + 5000)  # exactly recvWindow old: accepted
    assert code_of(check_timing, ok, 1_000_000 + 5001)[1] == "Timestamp for this request is outside of the recvWindow."
    check_timing({**ok, "recvWindow": "60000"}, 1_000_000 + 60000)
    assert code_of(check_timing, ok, 1_000_000 - 1000) == (
        -1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    check_timing(ok, 1_000_000 - 999)  # less than a second ahead: accepted
    check_timing({"timestamp": "1000000000000000"}, 1_000_000_000_000 + 10)  # 16 digits: microseconds
    assert code_of(check_timing, {**ok, "recvWindow": "60001"}, 1_000_000)[0] == -1131
    # a replay 60 times faster than the wall clock: the tolerances are wall time, 60 times the replay ms
    check_timing(ok, 1_000_000 + 5000 * 60, scale=60)
    assert code_of(check_timing, ok, 1_000_000 + 5000 * 60 + 1, scale=60)[0] == -1021
    check_timing(ok, 1_000_000 - 59_999, scale=60)
    assert code_of(check_timing, ok, 1_000_000 - 60_000, scale=60)[0] == -1021
    assert code_of(check_timing, {}, 1_000_000)[0] == -1102
    assert code_of(check_timing, {"timestamp": "12a"}, 1_000_000)[0] == -1100


def test_an_ed25519_key_verifies_its_base64_signature_and_nothing_else():
    private = Ed25519PrivateKey.generate()
    pem = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    keys = {"ed-key": ApiKey.ed25519("ed-key", pem, account="bob")}
    payload = "symbol=BTCUSDT&side=SELL&type=MARKET&quantity=0.01&timestamp=1000000"
    signature = base64.b64encode(private.sign(payload.encode())).decode()
    key, _ = authenticate(keys, "ed-key", f"{payload}&signature={quote(signature, safe='')}", "", 1_000_100)
    assert key.account == "bob"
    other = base64.b64encode(Ed25519PrivateKey.generate().sign(payload.encode())).decode()
    assert code_of(authenticate, keys, "ed-key", f"{payload}&signature={quote(other, safe='')}", "", 1_000_100)[0] == -1022
    assert code_of(authenticate, keys, "ed-key", f"{payload}&signature=not-base64!", "", 1_000_100)[0] == -1022
    assert code_of(authenticate, keys, "ed-key", f"{payload}&signature={quote(signature.lower(), safe='')}", "",
                   1_000_100)[0] == -1022  # case-sensitive, unlike HMAC
    with pytest.raises(ValueError):
        from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key

        ec_pem = generate_private_key(SECP256R1()).public_key().public_bytes(Encoding.PEM,
                                                                            PublicFormat.SubjectPublicKeyInfo)
        ApiKey.ed25519("ec-key", ec_pem)


def test_the_signature_is_removed_from_the_raw_text_as_sent():
    assert split_signature("a=1&signature=AB%2BC&b=%20x") == ("a=1&b=%20x", "AB+C")
    assert split_signature("") == ("", None)
