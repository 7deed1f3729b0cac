"""``PasswordPolicy`` and its list of common passwords (``authcore/policy.py``)."""

from __future__ import annotations

import difflib
import gzip
import subprocess
import sys
from importlib import resources

import pytest

from authcore import PasswordPolicy, PasswordPolicyError
from authcore.policy import MAX_PASSWORD_LENGTH, common_passwords

SECRET = "sentinel-Pa55word-do-not-leak"


def reasons(password: object, username: str | None = None, **options: object) -> tuple[str, ...]:
    try:
        PasswordPolicy(**options).check(password, username=username)  # type: ignore[arg-type]
    except PasswordPolicyError as error:
        return error.reasons
    return ()


def test_defaults() -> None:
    policy = PasswordPolicy()
    assert (policy.min_length, policy.max_length) == (8, 1024)
    assert policy.forbid_username
    assert policy.forbid_common
    assert policy == PasswordPolicy()
    assert policy != PasswordPolicy(min_length=9)
    assert len({policy, PasswordPolicy()}) == 1
    assert repr(policy) == (
        "PasswordPolicy(min_length=8, max_length=1024, forbid_username=True, forbid_common=True)"
    )
    assert issubclass(PasswordPolicyError, ValueError)


def test_lengths() -> None:
    assert reasons("Xq7!kZ2") == ("too_short",)
    assert reasons("Xq7!kZ2m") == ()
    assert reasons("é" * 8) == ()  # characters, not bytes
    assert reasons("") == ("too_short",)
    assert reasons("Xq7!kZ2m" * 128) == ()
    assert reasons("Xq7!kZ2m" * 128 + "x") == ("too_long",)
    assert reasons("Xq7!kZ2mq", max_length=8) == ("too_long",)
    assert reasons("abc", min_length=3, forbid_common=False) == ()


def test_similar_to_username() -> None:
    for password in (
        "alexander",
        "ALEXANDER",
        "rednaxela",
        "Alexander1",
        "alexandra",
        "ＡＬＥＸＡＮＤＥＲ",
    ):
        assert "similar_to_username" in reasons(password, "Alexander"), password
    for password in ("completely different", "alexander the great king"):
        assert "similar_to_username" not in reasons(password, "Alexander"), password
    assert reasons("alexander", None) == ()  # no username given: not checked
    assert reasons("alexander", "alexander", forbid_username=False) == ()
    assert reasons("Xq7!kZ2m", "   ") == ()
    # the threshold is Django's: ratio 0.7 and up
    assert difflib.SequenceMatcher(a="alexandra", b="alexander").ratio() >= 0.7


def test_too_common() -> None:
    for password in ("password", "PASSWORD", " 12345678 ", "iloveyou", "sunshine", "Qwertyuiop"):
        assert reasons(password) == ("too_common",), password
    assert reasons("password", forbid_common=False) == ()
    assert reasons("Xq7!kZ2m correct horse") == ()


def test_every_reason_at_once_and_a_message_without_the_password() -> None:
    with pytest.raises(PasswordPolicyError) as caught:
        PasswordPolicy().check("alice1", username="alice")
    assert caught.value.reasons == ("too_short", "similar_to_username", "too_common")
    message = str(caught.value)
    assert message == (
        "password refused: it is too short; it is too similar to the username; "
        "it is a commonly used password"
    )
    with pytest.raises(PasswordPolicyError) as caught:
        PasswordPolicy(min_length=40).check(SECRET, username="bob")
    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value)


def test_wrong_types() -> None:
    with pytest.raises(PasswordPolicyError) as caught:
        PasswordPolicy().check(b"bytes")  # type: ignore[arg-type]
    assert caught.value.reasons == ()
    with pytest.raises(TypeError, match="username"):
        PasswordPolicy().check("Xq7!kZ2m", username=5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"min_length": 0}, ValueError),
        ({"min_length": 10, "max_length": 9}, ValueError),
        ({"max_length": MAX_PASSWORD_LENGTH + 1}, ValueError),
        ({"min_length": 8.0}, TypeError),
        ({"min_length": True}, TypeError),
        ({"forbid_common": 1}, TypeError),
        ({"forbid_username": None}, TypeError),
    ],
)
def test_bad_options(options: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error):
        PasswordPolicy(**options)  # type: ignore[arg-type]


def test_the_common_list_is_package_data_from_zxcvbn() -> None:
    folder = resources.files("authcore").joinpath("_data")
    text = gzip.decompress(folder.joinpath("common-passwords.txt.gz").read_bytes()).decode()
    assert text.startswith("# 30000 common passwords")
    assert "zxcvbn" in text.splitlines()[1]
    assert "MIT" in folder.joinpath("README.md").read_text()
    words = common_passwords()
    assert len(words) >= 10_000
    assert all(word == word.lower() and word.strip() == word and word for word in words)
    assert common_passwords() is words  # read once


def test_the_list_is_read_lazily() -> None:
    code = (
        "import authcore, authcore.policy, sys\n"
        "p = authcore.PasswordPolicy(); p.check('Xq7!kZ2m', username='bob')\n"
        "assert authcore.policy.common_passwords.cache_info().currsize == 1\n"
        "authcore.policy.common_passwords.cache_clear()\n"
        "authcore.PasswordPolicy(forbid_common=False).check('Xq7!kZ2m')\n"
        "assert authcore.policy.common_passwords.cache_info().currsize == 0\n"
        "assert 'passlib' not in sys.modules\n"
    )
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
