"""Tests for authcore.jwt: round trips, rotation, and one test per known attack.

Tokens are forged here with the standard library only (base64, json, hmac), so
the tests do not depend on the JWT library authcore uses underneath.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import string
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from authcore.errors import InvalidTokenError, MalformedTokenError, TokenExpiredError
from authcore.jwt import JWTManager

SECRET = b"SENTINEL-SECRET-0123456789abcdef"  # exactly 32 bytes
OLD_SECRET = b"SENTINEL-OLDKEY-0123456789abcdef"
T0 = 1_893_456_000  # 2030-01-01T00:00:00Z
START = datetime.fromtimestamp(T0, UTC)
DROP = object()


class Clock:
    """A settable clock; the project's FakeClock is tested elsewhere."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, timestamp: float) -> None:
        self.now = datetime.fromtimestamp(timestamp, UTC)


def make(clock: Callable[[], datetime] | None = None, **kwargs: Any) -> JWTManager:
    return JWTManager(SECRET, clock=clock or Clock(), **kwargs)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: object) -> str:
    if isinstance(value, bytes):
        return b64(value)
    if isinstance(value, str):
        return b64(value.encode())
    return b64(json.dumps(value).encode())


def forge(header: object, payload: object, key: bytes = SECRET, digest: str = "sha256") -> str:
    """A token signed with *key* whatever its header says."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def header(**changes: object) -> dict[str, object]:
    result: dict[str, object] = {"alg": "HS256", "typ": "JWT"}
    result.update(changes)
    return {k: v for k, v in result.items() if v is not DROP}


def claims(**changes: object) -> dict[str, object]:
    result: dict[str, object] = {"sub": "user-1", "iat": T0, "exp": T0 + 900}
    result.update(changes)
    return {k: v for k, v in result.items() if v is not DROP}


def refused(manager: JWTManager, token: object) -> InvalidTokenError:
    """Assert *token* is refused with a plain InvalidTokenError, never anything else."""
    with pytest.raises(InvalidTokenError) as info:
        manager.verify(token)  # type: ignore[arg-type]
    assert not isinstance(info.value, TokenExpiredError)
    return info.value


# --- round trip ---------------------------------------------------------------


def test_issue_sets_the_standard_claims_and_verify_returns_them() -> None:
    manager = make(issuer="https://auth.example", audience="api")
    token = manager.issue("user-1", session_id="sess-1", scopes=["read", "write"])
    got = manager.verify(token)
    assert got["sub"] == "user-1"
    assert (got["iat"], got["exp"]) == (T0, T0 + 900)
    assert type(got["iat"]) is int
    assert type(got["exp"]) is int
    assert got["sid"] == "sess-1"
    assert got["scope"] == "read write"
    assert (got["iss"], got["aud"]) == ("https://auth.example", "api")
    assert isinstance(got["jti"], str)
    assert len(got["jti"]) >= 16
    head = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert head == {"alg": "HS256", "kid": manager.kid, "typ": "JWT"}


def test_optional_claims_are_absent_unless_asked_for() -> None:
    got = make().verify(make().issue("u"))
    assert set(got) == {"sub", "iat", "exp", "jti"}


def test_ttl_override_and_fractional_ttl_rounds_up() -> None:
    manager = make(ttl=timedelta(hours=1))
    assert manager.verify(manager.issue("u"))["exp"] == T0 + 3600
    assert manager.verify(manager.issue("u", ttl=timedelta(seconds=1.5)))["exp"] == T0 + 2


def test_jti_is_unique() -> None:
    manager = make()
    assert len({manager.verify(manager.issue("u"))["jti"] for _ in range(500)}) == 500


def test_the_signature_is_standard_hmac_over_the_signing_input() -> None:
    token = make().issue("u")
    signing_input, _, signature = token.rpartition(".")
    assert b64(hmac.new(SECRET, signing_input.encode(), "sha256").digest()) == signature


@pytest.mark.parametrize(("algorithm", "size"), [("HS384", 48), ("HS512", 64)])
def test_other_hmac_algorithms_round_trip(algorithm: str, size: int) -> None:
    manager = JWTManager(b"k" * size, algorithm=algorithm, clock=Clock())
    assert manager.verify(manager.issue("u"))["sub"] == "u"


def test_float_times_from_other_issuers_are_accepted() -> None:
    manager = make()
    token = forge(header(), claims(iat=T0 - 0.5, exp=T0 + 0.25))
    assert manager.verify(token)["exp"] == T0 + 0.25


# --- construction -------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["none", "None", "RS256", "ES256", "hs256", "HS1", ""])
def test_construction_refuses_other_algorithms(algorithm: str) -> None:
    with pytest.raises(ValueError, match="algorithm"):
        JWTManager(SECRET, algorithm=algorithm)


@pytest.mark.parametrize(
    ("secret", "algorithm"),
    [
        (b"x" * 31, "HS256"),
        ("é" * 15 + "a", "HS256"),  # 31 UTF-8 bytes, 16 characters
        (b"x" * 47, "HS384"),
        (b"x" * 63, "HS512"),
        ("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n", "HS256"),
        ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC0123456789", "HS256"),
        ("\ud800" * 40, "HS256"),
    ],
)
def test_construction_refuses_weak_or_asymmetric_secrets(
    secret: str | bytes, algorithm: str
) -> None:
    with pytest.raises(ValueError, match="secret") as info:
        JWTManager(secret, algorithm=algorithm)
    assert str(secret) not in str(info.value)


def test_str_secrets_are_measured_in_utf8_bytes() -> None:
    JWTManager("é" * 16)  # 16 characters, 32 bytes


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"secret": bytearray(40)}, TypeError),
        ({"secret": None}, TypeError),
        ({"algorithm": 256}, TypeError),
        ({"ttl": timedelta(0)}, ValueError),
        ({"ttl": 900}, TypeError),
        ({"leeway": timedelta(seconds=-1)}, ValueError),
        ({"leeway": 5}, TypeError),
        ({"issuer": ""}, ValueError),
        ({"audience": ["api"]}, TypeError),
        ({"clock": "now"}, TypeError),
        ({"previous_secrets": "x" * 40}, TypeError),
        ({"previous_secrets": [b"short"]}, ValueError),
    ],
)
def test_construction_validates_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    secret = kwargs.pop("secret", SECRET)
    with pytest.raises(error):
        JWTManager(secret, **kwargs)


def test_settings_are_readable() -> None:
    manager = make(issuer="i", audience="a", ttl=timedelta(minutes=5), leeway=timedelta(seconds=3))
    assert (manager.algorithm, manager.issuer, manager.audience) == ("HS256", "i", "a")
    assert (manager.ttl, manager.leeway) == (timedelta(minutes=5), timedelta(seconds=3))


def test_repr_shows_settings_and_never_the_secret() -> None:
    manager = JWTManager(SECRET, issuer="iss", audience="aud", previous_secrets=[OLD_SECRET])
    text = repr(manager)
    assert "HS256" in text
    assert "'iss'" in text
    assert "'aud'" in text
    assert "seconds=900" in text
    assert "SENTINEL" not in text
    assert manager.kid not in text


# --- key rotation ---------------------------------------------------------------


def test_kid_is_deterministic_short_hex_and_differs_per_key() -> None:
    assert make().kid == make().kid
    assert make().kid != JWTManager(OLD_SECRET).kid
    assert len(make().kid) == 16
    assert set(make().kid) <= set(string.hexdigits.lower())
    assert make().kid != hashlib.sha256(SECRET).hexdigest()[:16]


def test_old_tokens_verify_after_rotation_and_fail_once_the_key_is_dropped() -> None:
    clock = Clock()
    old = JWTManager(OLD_SECRET, clock=clock)
    old_token = old.issue("u")
    rotated = JWTManager(SECRET, clock=clock, previous_secrets=[OLD_SECRET, OLD_SECRET])
    assert rotated.verify(old_token)["sub"] == "u"
    new_token = rotated.issue("u")
    assert new_token.split(".")[0] != old_token.split(".")[0]  # new kid
    refused(old, new_token)  # the old deployment does not know the new key
    refused(JWTManager(SECRET, clock=clock), old_token)  # old key dropped


def test_unknown_or_mistyped_kid_is_refused() -> None:
    manager = make(previous_secrets=[OLD_SECRET])
    for kid in ["0000000000000000", "", 7, None, [manager.kid], {"k": 1}]:
        refused(manager, forge(header(kid=kid), claims()))


def test_kid_naming_another_key_is_refused() -> None:
    manager = make(previous_secrets=[OLD_SECRET])
    old_kid = JWTManager(OLD_SECRET).kid
    refused(manager, forge(header(kid=old_kid), claims()))  # signed with SECRET
    refused(manager, forge(header(kid=manager.kid), claims(), key=OLD_SECRET))


def test_token_without_kid_is_checked_against_the_signing_key_only() -> None:
    manager = make(previous_secrets=[OLD_SECRET])
    assert manager.verify(forge(header(), claims()))["sub"] == "user-1"
    refused(manager, forge(header(), claims(), key=OLD_SECRET))


# --- algorithm and header attacks ---------------------------------------------


@pytest.mark.parametrize(
    "alg", ["none", "None", "NONE", "nOnE", "hs256", "HS256 ", "RS256", "HS512"]
)
def test_other_algorithms_are_refused(alg: str) -> None:
    manager = make()
    refused(manager, forge(header(alg=alg), claims()))  # signed with the real key
    refused(manager, forge(header(alg=alg), claims(), digest="sha512"))
    refused(manager, f"{segment(header(alg=alg))}.{segment(claims())}.")  # unsigned
    refused(manager, f"{segment(header(alg=alg))}.{segment(claims())}.AA")


@pytest.mark.parametrize("alg", [DROP, None, "", ["HS256"], {"HS256": 1}, 256])
def test_missing_or_mistyped_alg_is_refused(alg: object) -> None:
    refused(make(), forge(header(alg=alg), claims()))


@pytest.mark.parametrize("crit", [["exp"], [], ["b64"], "exp", None])
def test_any_crit_header_is_refused(crit: object) -> None:
    refused(make(), forge(header(crit=crit, b64=False), claims()))


def test_duplicate_header_or_claim_names_are_refused() -> None:
    manager = make()
    refused(manager, forge('{"alg":"none","alg":"HS256"}', claims()))
    payload = json.dumps(claims())[:-1] + ', "sub": "admin"}'
    refused(manager, forge(header(), payload))


def test_signature_tampering_is_refused() -> None:
    manager = make()
    token = manager.issue("user-1")
    head, body, signature = token.split(".")
    forged_body = segment({**manager.verify(token), "sub": "admin"})
    refused(manager, f"{head}.{forged_body}.{signature}")
    refused(manager, f"{head}.{body}.{signature[:-2]}")
    refused(manager, f"{head}.{body}.{b64(b'x' * 32)}")
    refused(manager, forge(header(kid=manager.kid), claims(), key=b"another-key-" * 4))


def test_non_canonical_base64_signature_is_refused() -> None:
    manager = make()
    token = manager.issue("u")
    # 43 characters carry a 32-byte signature: the last one has 2 unused low bits.
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "-_"
    twin = alphabet[alphabet.index(token[-1]) ^ 1]
    assert base64.urlsafe_b64decode(token[-43:-1] + twin + "=") == base64.urlsafe_b64decode(
        token[-43:] + "="
    )
    refused(manager, token[:-1] + twin)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_any_single_character_change_is_refused(data: st.DataObject) -> None:
    manager = make()
    token = manager.issue("user-1", claims={"role": "user"})
    index = data.draw(st.integers(0, len(token) - 1))
    char = data.draw(st.sampled_from(string.ascii_letters + string.digits + "-_.=+/ \x00é"))
    mutated = token[:index] + char + token[index + 1 :]
    if mutated != token:
        refused(manager, mutated)


# --- malformed structure --------------------------------------------------------


def test_non_str_tokens_are_refused() -> None:
    manager = make()
    token = manager.issue("u")
    for value in [None, token.encode(), 1, 1.5, [token], {"t": token}, object()]:
        assert isinstance(refused(manager, value), MalformedTokenError)


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "..",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",  # JWE compact serialisation
        "eyJhbGciOiJIUzI1NiJ9..c2ln",
        ".eyJzdWIiOiJ1In0.c2ln",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln=",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2l+",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2l/",
        " eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln\n",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnü",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c",  # length 1 mod 4
        "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2ln",
    ],
)
def test_malformed_structure_is_refused(token: str) -> None:
    assert isinstance(refused(make(), token), MalformedTokenError)


@pytest.mark.parametrize(
    "raw_header",
    [
        b'["alg", "HS256"]',
        b'"HS256"',
        b"null",
        b"42",
        b"",
        b"{",
        b'{"alg": "HS256"} x',
        b"\xff\xfe{}",
        '{"alg": "HS256"}'.encode("utf-16"),
        b'\xef\xbb\xbf{"alg": "HS256"}',  # UTF-8 byte order mark
        b'{"alg": "HS256", "x": NaN}',
        b'{"alg": "HS256", "x": -Infinity}',
    ],
)
def test_header_that_is_not_a_json_object_is_refused(raw_header: bytes) -> None:
    assert isinstance(refused(make(), forge(raw_header, claims())), MalformedTokenError)


def test_claims_that_are_not_a_json_object_are_refused() -> None:
    manager = make()
    for payload in [b"[]", b'"sub"', b"null", b"\xff", b'{"sub": "u", "exp": NaN}']:
        assert isinstance(refused(manager, forge(header(), payload)), MalformedTokenError)


def test_tokens_over_8_kib_are_refused_before_decoding() -> None:
    manager = make()
    big = forge(header(), claims(pad="x" * 6100))
    assert len(big) > 8192
    assert isinstance(refused(manager, big), MalformedTokenError)
    refused(manager, "a" * 10_000_000)
    refused(manager, forge(header(), claims(x="[" * 100_000)))
    fits = forge(header(), claims(pad="x" * 6000))
    assert len(fits) <= 8192
    assert manager.verify(fits)["pad"] == "x" * 6000


def test_deeply_nested_json_is_refused_without_recursion_error() -> None:
    manager = make()
    nested_header = b'{"alg":"HS256","x":' + b"[" * 2000 + b"]" * 2000 + b"}"
    assert isinstance(refused(manager, forge(nested_header, claims())), MalformedTokenError)
    assert isinstance(refused(manager, forge(b"[" * 6000, claims())), MalformedTokenError)
    nested_claims = json.dumps(claims())[:-1] + ', "x": ' + "[" * 2500 + "]" * 2500 + "}"
    assert len(forge(header(), nested_claims)) < 8192
    assert isinstance(refused(manager, forge(header(), nested_claims)), MalformedTokenError)
    refused(manager, forge(header(), b'{"x":' + b"{" * 5000))
    too_deep = json.dumps(claims())[:-1] + ', "x": ' + "[" * 32 + "]" * 32 + "}"  # 33 levels
    assert isinstance(refused(manager, forge(header(), too_deep)), MalformedTokenError)
    brackets_in_strings = claims(x="[" * 3000)
    assert manager.verify(forge(header(), brackets_in_strings))["x"] == "[" * 3000


# --- claim checks ----------------------------------------------------------------


BAD_TIMES = [
    DROP,
    None,
    True,
    False,
    [T0 + 900],
    {"t": 1},
    "1893456900",
    "NaN",
    -1,
    10**400,
    1e400,
    253_402_300_800,
    2**64,
]


@pytest.mark.parametrize("value", BAD_TIMES)
@pytest.mark.parametrize("name", ["exp", "iat"])
def test_missing_or_mistyped_times_are_refused(name: str, value: object) -> None:
    refused(make(), forge(header(), claims(**{name: value})))


def test_huge_number_literals_in_exp_are_refused_cleanly() -> None:
    for literal in ["1" + "0" * 5000, "1e400", "-1e400", "1" + "0" * 400 + ".5"]:
        payload = '{"sub": "u", "iat": 0, "exp": ' + literal + "}"
        refused(make(), forge(header(), payload))


@pytest.mark.parametrize("value", [DROP, None, "", 42, ["user-1"], {"id": "u"}, True])
def test_missing_or_mistyped_sub_is_refused(value: object) -> None:
    refused(make(), forge(header(), claims(sub=value)))


@pytest.mark.parametrize("name", ["jti", "sid", "scope"])
def test_non_string_jti_sid_scope_are_refused(name: str) -> None:
    refused(make(), forge(header(), claims(**{name: ["x"]})))


def test_nbf_in_the_future_is_refused_unless_within_leeway() -> None:
    refused(make(), forge(header(), claims(nbf=T0 + 1)))
    refused(make(), forge(header(), claims(nbf="soon")))
    assert make().verify(forge(header(), claims(nbf=T0)))["nbf"] == T0
    lenient = make(leeway=timedelta(seconds=30))
    assert lenient.verify(forge(header(), claims(nbf=T0 + 30)))
    refused(lenient, forge(header(), claims(nbf=T0 + 31)))


def test_iat_in_the_future_is_refused_beyond_leeway_only() -> None:
    refused(make(), forge(header(), claims(iat=T0 + 1)))
    lenient = make(leeway=timedelta(seconds=30))
    assert lenient.verify(forge(header(), claims(iat=T0 + 5)))["iat"] == T0 + 5
    assert lenient.verify(forge(header(), claims(iat=T0 + 30)))
    refused(lenient, forge(header(), claims(iat=T0 + 30.5)))


@pytest.mark.parametrize(
    "iss",
    [
        DROP,
        None,
        "https://evil.example",
        "https://auth.example/",
        ["https://auth.example"],
        "HTTPS://AUTH.EXAMPLE",
    ],
)
def test_issuer_must_match_exactly_when_configured(iss: object) -> None:
    manager = make(issuer="https://auth.example")
    assert manager.verify(forge(header(), claims(iss="https://auth.example")))
    refused(manager, forge(header(), claims(iss=iss)))


def test_issuer_is_ignored_when_not_configured() -> None:
    assert make().verify(forge(header(), claims(iss="anyone")))["iss"] == "anyone"


@pytest.mark.parametrize("aud", [DROP, None, "ap", "api2", "API", ["other"], ["api", 1], [], 1])
def test_audience_must_match_exactly_when_configured(aud: object) -> None:
    manager = make(audience="api")
    assert manager.verify(forge(header(), claims(aud="api")))
    assert manager.verify(forge(header(), claims(aud=["other", "api"])))
    refused(manager, forge(header(), claims(aud=aud)))


@pytest.mark.parametrize("aud", ["api", ["api"], [], None, ""])
def test_a_token_with_aud_is_refused_when_no_audience_is_configured(aud: object) -> None:
    refused(make(), forge(header(), claims(aud=aud)))


# --- expiry ----------------------------------------------------------------------


def test_expiry_boundary_is_exactly_exp() -> None:
    clock = Clock()
    manager = make(clock)
    token = manager.issue("u", ttl=timedelta(seconds=60))
    clock.now = START + timedelta(seconds=60) - timedelta(microseconds=1)
    assert manager.verify(token)["sub"] == "u"
    clock.now = START + timedelta(seconds=60)
    with pytest.raises(TokenExpiredError):
        manager.verify(token)


def test_leeway_extends_expiry_exactly() -> None:
    clock = Clock()
    manager = make(clock, leeway=timedelta(seconds=30))
    token = manager.issue("u", ttl=timedelta(seconds=60))
    clock.now = START + timedelta(seconds=90) - timedelta(microseconds=1)
    assert manager.verify(token)
    clock.now = START + timedelta(seconds=90)
    with pytest.raises(TokenExpiredError):
        manager.verify(token)


def test_expired_is_only_reported_for_otherwise_valid_tokens() -> None:
    clock = Clock()
    manager = make(clock, audience="api")
    clock.set(T0 + 10_000)
    refused(manager, forge(header(), claims(aud="api"), key=b"forged-key-" * 4))
    refused(manager, forge(header(), claims(aud="other")))
    with pytest.raises(TokenExpiredError):
        manager.verify(forge(header(), claims(aud="api")))


def test_a_broken_clock_is_an_invalid_token_with_the_cause_chained() -> None:
    naive = make(lambda: datetime(2030, 1, 1))
    error = refused(naive, make().issue("u"))
    assert isinstance(error.__cause__, ValueError)
    with pytest.raises(ValueError, match="naive"):
        naive.issue("u")


# --- issue() validation ------------------------------------------------------------


@pytest.mark.parametrize("name", ["sub", "iat", "exp", "jti", "sid", "scope", "iss", "aud", "nbf"])
def test_reserved_claims_cannot_be_overridden(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        make(issuer="i", audience="a").issue("u", claims={name: "x"})


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"subject": 1}, TypeError),
        ({"subject": ""}, ValueError),
        ({"session_id": 5}, TypeError),
        ({"session_id": ""}, ValueError),
        ({"scopes": "read"}, TypeError),
        ({"scopes": {"read"}}, TypeError),
        ({"scopes": ["read", 1]}, TypeError),
        ({"scopes": ["read write"]}, ValueError),
        ({"scopes": [""]}, ValueError),
        ({"claims": [("a", 1)]}, TypeError),
        ({"claims": {1: "a"}}, TypeError),
        ({"claims": {"a": object()}}, TypeError),
        ({"claims": {"a": float("nan")}}, ValueError),
        ({"claims": {"a": "x" * 7000}}, ValueError),
        ({"claims": {"a": json.loads("[" * 32 + "]" * 32)}}, ValueError),  # 33 levels
        ({"ttl": timedelta(0)}, ValueError),
        ({"ttl": 60}, TypeError),
        ({"ttl": timedelta(days=3_000_000)}, ValueError),
    ],
)
def test_issue_validates_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    subject = kwargs.pop("subject", "u")
    with pytest.raises(error):
        make().issue(subject, **kwargs)


def test_issue_refuses_recursion_deep_claims_with_value_error() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValueError, match="nest"):
        make().issue("u", claims={"deep": deep})


def test_issue_accepts_nesting_up_to_32_levels() -> None:
    manager = make()
    nested: list[Any] = []  # with the claims object: 32 levels
    for _ in range(30):
        nested = [nested]
    assert manager.verify(manager.issue("u", claims={"n": nested}))["n"] == nested


def test_issue_refuses_a_clock_before_1970() -> None:
    with pytest.raises(ValueError, match="1970"):
        make(lambda: datetime(1969, 12, 31, tzinfo=UTC)).issue("u")


# --- secrets never leak ---------------------------------------------------------------


def test_messages_never_contain_the_token_or_the_key() -> None:
    clock = Clock()
    manager = make(clock, audience="api")
    good = manager.issue("SENTINEL-SUBJECT")
    head, body, sig = good.split(".")
    tokens = [
        forge(header(alg="none"), claims(sub="SENTINEL-SUBJECT")),
        f"{head}.{body}.{sig[:-4]}",
        f"{head}.{body}",
        f"{head}.{body}.{sig}.{sig}",
        forge(b"\xffSENTINEL", claims()),
        forge(b"[" * 5000, claims()),
        forge(header(), b"\xffSENTINEL-CLAIMS"),
        forge(header(), claims(aud="SENTINEL-AUD")),
        forge(header(), claims(exp="SENTINEL-EXP")),
        good + "A" * 9000,
        good,  # expires below
    ]
    clock.set(T0 + 10**6)
    for token in tokens:
        with pytest.raises(InvalidTokenError) as info:
            manager.verify(token)
        rendered = "".join(traceback.format_exception(info.value)) + repr(info.value)
        assert "SENTINEL" not in rendered
        assert all(part not in rendered for part in token.split(".") if len(part) > 3)


# --- properties -------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
claim_names = st.text(min_size=1, max_size=8).filter(
    lambda n: n not in {"sub", "iat", "exp", "jti", "sid", "scope", "iss", "aud", "nbf"}
)
scope_names = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=8
).filter(lambda s: s.split() == [s])


@given(
    subject=st.text(min_size=1, max_size=40),
    session_id=st.none() | st.text(min_size=1, max_size=20),
    scopes=st.lists(scope_names, max_size=4),
    extra=st.dictionaries(claim_names, json_values, max_size=4),
)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip(
    subject: str, session_id: str | None, scopes: list[str], extra: dict[str, Any]
) -> None:
    manager = make(issuer="iss", audience="aud")
    got = manager.verify(manager.issue(subject, session_id=session_id, scopes=scopes, claims=extra))
    assert got["sub"] == subject
    assert got.get("sid") == session_id
    assert got.get("scope", "").split() == scopes
    assert {k: got[k] for k in extra} == extra


@given(st.text(max_size=300) | st.binary(max_size=300).map(b64))
@settings(max_examples=150, deadline=None)
def test_arbitrary_strings_only_ever_raise_invalid_token(text: str) -> None:
    refused(make(), text)


@given(head=st.dictionaries(st.text(max_size=5), json_values, max_size=3), body=json_values)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_arbitrary_signed_json_only_ever_raises_invalid_token(
    head: dict[str, Any], body: Any
) -> None:
    with pytest.raises(InvalidTokenError):
        make().verify(forge({**head, "alg": "HS256"}, body))
