"""The scrubber: the token, proxy credentials and URLs' userinfo out of every text kept or shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from batcher.support.crash import write_crash_file
from batcher.support.secrets import (
    MIN_PIECE,
    REDACTED,
    SECRET,
    Scrubber,
    proxy_credentials,
    strip_userinfo,
)

TOKEN = "tok-Made-Up-9f8e7d6c5b4a3210zyxw"


def test_proxy_credentials_come_from_every_proxy_variable_in_any_case() -> None:
    """The user and password of each proxy URL, as given and percent-decoded, are learnt."""
    passwords, users = proxy_credentials(
        {
            "HTTPS_PROXY": "http://ops%40corp:p%3Ass-word@proxy.example:3128",
            "http_proxy": "proxy2.example:8080",  # no scheme, no credentials: nothing
            "ALL_PROXY": "socks5://second:hunter2@proxy3.example",
            "PATH": "http://not:a-proxy@example",
        }
    )
    assert set(passwords) == {"p%3Ass-word", "p:ss-word", "hunter2"}
    assert set(users) == {"ops%40corp", "ops@corp", "second"}


def test_proxy_credentials_come_from_netrc_for_a_proxy_without_them(tmp_path: Path) -> None:
    """A proxy URL without credentials takes them from .netrc ($NETRC), as aiohttp does."""
    netrc = tmp_path / "netrc"
    netrc.write_text(
        "machine proxy.example login netrc-user password netrc-pa55word\n"
        "machine api.example login api-user password api-password\n",
        encoding="utf-8",
    )
    passwords, users = proxy_credentials(
        {"HTTPS_PROXY": "http://proxy.example:3128", "NETRC": str(netrc)}
    )
    assert passwords == ["netrc-pa55word"]
    assert users == ["netrc-user"]


def test_an_unreadable_netrc_or_proxy_url_is_no_error(tmp_path: Path) -> None:
    """A broken .netrc or a proxy variable that is not a URL teaches nothing and raises nothing."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine\n", encoding="utf-8")
    assert proxy_credentials({"HTTPS_PROXY": "http://[::1", "NETRC": str(netrc)}) == ([], [])
    assert proxy_credentials({"HTTPS_PROXY": "http://p.example", "NETRC": str(netrc)}) == ([], [])


def test_a_proxys_407_reason_phrase_loses_the_credentials() -> None:
    """`user:password` in a reason phrase becomes `[secret]:[secret]`; the token `[token]`."""
    scrubber = Scrubber.for_environment(
        TOKEN, environ={"HTTPS_PROXY": "http://opsuser:Pr0xy-pa55word@proxy.example:3128"}
    )
    text = f"HTTP 407 opsuser:Pr0xy-pa55word not allowed for Bearer {TOKEN}"
    assert scrubber.scrub(text) == f"HTTP 407 {SECRET}:{SECRET} not allowed for Bearer {REDACTED}"
    assert scrubber.scrub("PR0XY-P") == "PR0XY-P"  # shorter than a piece: kept
    assert scrubber.scrub("xPR0XY-PA55WORDx") == f"x{SECRET}x"  # any case


def test_a_user_name_goes_as_a_whole_word_only() -> None:
    """A short user name is removed where it stands alone, not inside ordinary words."""
    scrubber = Scrubber(None, names=["ops"])
    assert scrubber.scrub("ops: stopped by OPS; tops") == f"{SECRET}: stopped by {SECRET}; tops"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("via http://u:p@proxy:3128/x", "via http://proxy:3128/x"),
        ("socks5h://user@h and HTTPS://a%40b:c@d.example", "socks5h://h and HTTPS://d.example"),
        (
            "mail ada@example.com, http://example.com/a@b",
            "mail ada@example.com, http://example.com/a@b",
        ),
    ],
)
def test_every_urls_userinfo_is_dropped(text: str, expected: str) -> None:
    """`user:password@` after `scheme://` goes, whatever the scrubber knows; emails stay."""
    assert strip_userinfo(text) == expected
    assert Scrubber(None).scrub(text) == expected


def test_a_crash_file_keeps_no_proxy_credentials(tmp_path: Path) -> None:
    """A traceback naming a proxy URL with credentials is written without them."""
    scrubber = Scrubber.for_environment(
        None, environ={"HTTPS_PROXY": "http://opsuser:Pr0xy-pa55word@proxy.example:3128"}
    )
    try:
        raise RuntimeError("cannot reach http://opsuser:Pr0xy-pa55word@proxy.example:3128 (407)")
    except RuntimeError as exc:
        crash = write_crash_file(tmp_path, exc, scrubber)
    assert crash is not None
    text = crash.read_text(encoding="utf-8")
    assert "cannot reach http://proxy.example:3128 (407)" in text
    assert "Pr0xy-pa55word" not in text
    assert "opsuser" not in text


def test_many_long_tokens_are_each_found_by_any_piece_and_a_short_one_whole() -> None:
    """With 20 JWT-sized location tokens (looked up by the text's windows) and a secret
    shorter than a piece, a piece of any of them, in any case, is found and replaced; text
    without one is left alone."""
    tokens = [
        f"eyJ{n:02d}" + "".join(chr(65 + (n * 7 + i) % 26) for i in range(700)) for n in range(20)
    ]
    scrubber = Scrubber("short", tokens=tokens)
    piece = tokens[19][300:309].lower()
    assert scrubber.found_in(f"echo {piece} back")
    assert scrubber.scrub(f"echo {piece} back") == f"echo {REDACTED} back"
    assert scrubber.found_in("a SHORT one")
    assert not scrubber.found_in("Tags updated vip newsletter")


@pytest.mark.parametrize("token", ["sandbox-token", "pit-0f3c9e2a-77d1-4b8e-9a51-c2d4e6f80a1b"])
@pytest.mark.parametrize("jwt", [False, True])
def test_a_piece_is_found_wherever_it_sits_in_a_long_text(token: str, jwt: bool) -> None:
    """A piece of a token is found in a text of many tags whatever the token's size (a short
    token's few pieces are searched for; a JWT's hundreds are looked up in the runs of
    characters they use): alone, inside a longer run of the token's characters, at the text's
    ends, and in another case; a short secret beside them is found whole, and 30 short secrets
    with no long one are each found."""
    jwt_token = "eyJhbGciOi." + "".join(chr(97 + (i * 11) % 26) for i in range(600)) + "-_x9"
    scrubber = Scrubber(token, tokens=[jwt_token] if jwt else [], others=["pw1"])
    tags = " ".join(f"tag{n:02d} customer-since-20{n:02d}" for n in range(2000))
    assert not scrubber.found_in(tags)
    secrets = [token] + ([jwt_token] if jwt else [])
    for secret in secrets:
        piece = secret[-MIN_PIECE:]
        for text in (
            f"{tags} {piece}",
            f"{piece}{tags}",
            f"{tags}{piece.upper()}",
            f"{tags} {secret[:3]}{piece}{secret[:5]} {tags}",
        ):
            assert scrubber.found_in(text), (secret[:12], text[:20], text[-20:])
    assert not scrubber.found_in(f"{tags} {token[-MIN_PIECE + 1 :]}")
    assert scrubber.found_in(f"{tags} xPW1x")
    special = "p]a^s\\s-w.o[r]d*+?(x){2}|$ end"  # a proxy password: the pattern's own signs
    odd = Scrubber(token, others=[special])
    assert odd.found_in(f"{tags} {special[3:12]} {tags}")
    assert not odd.found_in(tags)
    many = Scrubber(None, others=[f"s{n:02d}" for n in range(30)])
    assert all(many.found_in(f"{tags} s{n:02d}") for n in range(30))
    assert not many.found_in("tag01 vip")
