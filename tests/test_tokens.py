from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authcore import MalformedTokenError, TokenParts, generate_token, hash_token, parse_token
from authcore.tokens import mint_token

SAFE = re.compile(r"[A-Za-z0-9\-._~]+")
HEX64 = "a" * 64


def test_format_for_a_plain_user_id() -> None:
    token = generate_token("user_1")
    assert token.startswith("token_user_1_")
    prefix, uid, stamp, secret = token.split("_", 1)[0], "user_1", *token.rsplit("_", 2)[1:]
    assert prefix == "token"
    assert stamp.isdigit()
    assert stamp.isascii()
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert SAFE.fullmatch(token)
    assert parse_token(token).user_id == uid


def test_timestamp_is_microseconds_since_the_epoch() -> None:
    before = time.time_ns() // 1000
    token = generate_token(1)
    after = time.time_ns() // 1000
    stamp = int(token.rsplit("_", 2)[1])
    assert before <= stamp <= after
    issued = parse_token(token).issued_at
    assert issued.tzinfo is UTC
    assert abs(issued - datetime.now(UTC)) < timedelta(seconds=5)


def test_issued_at_round_trips_exactly() -> None:
    when = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert parse_token(mint_token("u", 32, when)).issued_at == when


@pytest.mark.parametrize(
    "user_id",
    [
        "alice",
        42,
        0,
        -7,
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "a_b_c",
        "with space",
        "ünïcødé",
        "a/b",
        "user@example.com",
        "~tilde",
        "~",
        "_",
        "__",
        "0",
        "x" * 255,
        "é" * 127,
        "🔑" * 63,
        "line\nbreak",
    ],
)
def test_round_trip(user_id: str | int | uuid.UUID) -> None:
    token = generate_token(user_id)
    assert SAFE.fullmatch(token)
    assert len(token) <= 512
    assert parse_token(token).user_id == str(user_id)


def test_ids_needing_encoding_get_a_leading_tilde() -> None:
    assert generate_token("a b").startswith("token_~")
    assert generate_token("~x").startswith("token_~")
    assert generate_token("a.b-c~d_e").startswith("token_a.b-c~d_e_")


@given(st.text(min_size=1).filter(lambda s: len(s.encode("utf-8", "surrogatepass")) <= 255))
def test_round_trip_property(user_id: str) -> None:
    try:
        user_id.encode("utf-8")
    except UnicodeEncodeError:
        with pytest.raises(ValueError, match="surrogates"):
            generate_token(user_id)
        return
    token = generate_token(user_id, nbytes=16)
    assert SAFE.fullmatch(token)
    assert parse_token(token).user_id == user_id


@pytest.mark.parametrize("user_id", ["", "x" * 256, "é" * 128, "\ud800"])
def test_bad_user_ids_raise_value_error(user_id: str) -> None:
    with pytest.raises(ValueError, match="user_id"):
        generate_token(user_id)


@pytest.mark.parametrize("user_id", [None, True, 1.5, b"bytes", ["x"]])
def test_wrong_user_id_types_raise_type_error(user_id: object) -> None:
    with pytest.raises(TypeError):
        generate_token(user_id)  # type: ignore[arg-type]


@pytest.mark.parametrize("nbytes", [16, 17, 32, 64])
def test_nbytes_sets_the_random_length(nbytes: int) -> None:
    secret = parse_token(generate_token("u", nbytes=nbytes)).secret
    assert len(secret) == 2 * nbytes


@pytest.mark.parametrize("nbytes", [0, 15, 65, -1])
def test_nbytes_out_of_range(nbytes: int) -> None:
    with pytest.raises(ValueError, match="nbytes"):
        generate_token("u", nbytes=nbytes)


def test_nbytes_type() -> None:
    with pytest.raises(TypeError):
        generate_token("u", nbytes=True)
    with pytest.raises(TypeError):
        generate_token("u", nbytes=32.0)  # type: ignore[arg-type]


def test_pre_epoch_time_is_refused() -> None:
    with pytest.raises(ValueError, match="epoch"):
        mint_token("u", 32, datetime(1969, 12, 31, tzinfo=UTC))


def test_two_hundred_thousand_tokens_never_collide() -> None:
    tokens = {generate_token("same-user") for _ in range(200_000)}
    assert len(tokens) == 200_000


GOOD = f"token_u_1700000000000000_{HEX64}"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "token_",
        "token_u",
        f"Token_u_1_{HEX64}",
        f"tokenu_1_{HEX64}",
        f"token__1_{HEX64}",  # empty user id
        f"token_u__{HEX64}",  # empty timestamp
        "token_u_1_",  # empty random
        f"token_u_1_{HEX64}\n",  # trailing newline
        f"token_u_1_{HEX64} ",
        f" token_u_1_{HEX64}",
        f"token_u_1_{HEX64}\x00",
        f"token_u\x00_1_{HEX64}",
        f"token_u_١٢٣_{HEX64}",  # Arabic-Indic digits
        f"token_u_１２_{HEX64}",  # full-width digits
        f"token_u_+1_{HEX64}",
        f"token_u_-1_{HEX64}",
        f"token_u_01_{HEX64}",  # leading zero
        f"token_u_1e5_{HEX64}",
        f"token_u_{'9' * 19}_{HEX64}",  # too many digits
        f"token_u_{'9' * 18}_{HEX64}",  # past datetime.max
        f"token_u_{'1' * 400}_{HEX64}",
        f"token_u_1_{'A' * 64}",  # uppercase hex
        f"token_u_1_{'g' * 64}",
        f"token_u_1_{'a' * 31}",  # too short
        f"token_u_1_{'a' * 63}",  # odd
        f"token_u_1_{'a' * 130}",  # too long
        f"token_u/x_1_{HEX64}",
        f"token_ü_1_{HEX64}",
        f"token_~_1_{HEX64}",
        f"token_~!!_1_{HEX64}",
        f"token_~YQ_1_{HEX64}",  # '~' + base64('a'): 'a' would be written verbatim
        f"token_~YR_1_{HEX64}",  # non-canonical base64 of 'a'
        f"token_~Y_1_{HEX64}",  # impossible base64 length
        f"token_~_w_1_{HEX64}",  # invalid UTF-8 (0xff)
        f"token_{'x' * 256}_1_{HEX64}",  # user id too long
        "x" * 513,
        "token_" + "u" * 600 + f"_1_{HEX64}",
    ],
)
def test_parse_refuses_what_generate_cannot_produce(bad: str) -> None:
    with pytest.raises(MalformedTokenError):
        parse_token(bad)


@pytest.mark.parametrize("bad", [None, 1, b"token_u_1_" + HEX64.encode(), ["x"], object()])
def test_parse_refuses_non_strings(bad: object) -> None:
    with pytest.raises(MalformedTokenError):
        parse_token(bad)


def test_parse_good_token() -> None:
    parts = parse_token(GOOD)
    assert parts == TokenParts("u", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC), HEX64)
    assert parse_token(f"token_u_0_{HEX64}").issued_at == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_token(f"token_a_b_1_{HEX64}").user_id == "a_b"


def test_parts_repr_hides_the_secret() -> None:
    parts = parse_token(generate_token("u"))
    assert parts.secret not in repr(parts)
    assert "user_id='u'" in repr(parts)


def test_hostile_input_is_refused_cheaply() -> None:
    hostile = "token_" + "1" * 5_000_000
    start = time.perf_counter()
    for _ in range(1000):
        with pytest.raises(MalformedTokenError):
            parse_token(hostile)
    per_call = (time.perf_counter() - start) / 1000
    # Generous "does not scan the input" bound: scanning 5 MB takes milliseconds.
    assert per_call < 0.0005


def test_error_messages_never_contain_the_token() -> None:
    secret = "f" * 64
    for bad in (f"token_u_01_{secret}", f"token_u_1_{secret}X", f"token_ü_1_{secret}"):
        with pytest.raises(MalformedTokenError) as info:
            parse_token(bad)
        assert secret not in str(info.value)


def test_hash_token() -> None:
    digest = hash_token(GOOD)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert digest == hash_token(GOOD)
    assert digest != hash_token(GOOD[:-1] + "b")
    with pytest.raises(TypeError):
        hash_token(b"x")  # type: ignore[arg-type]
