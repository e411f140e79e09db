"""SandboxConfig from option strings and TOML; every mistake is one line naming the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from batcher.sandbox import (
    DEFAULT_LOCATION,
    EXAMPLE_LOCATION,
    FaultConfig,
    RateConfig,
    SandboxConfig,
    config_from_options,
    is_loopback,
    load_config,
    parse_faults,
    parse_rate,
)

REFERENCE = Path(__file__).resolve().parents[1] / "reference"


def test_rate_strings() -> None:
    assert parse_rate("100/10000") == RateConfig(max=100, interval_ms=10_000)
    assert parse_rate(" 5/1000, daily=70 ,retry_after=true") == RateConfig(5, 1000, 70, True)
    assert parse_rate("max=7") == RateConfig(max=7)
    assert parse_rate("off") is None
    assert parse_rate("OFF") is None


def test_rate_string_keeps_the_base_for_keys_not_given() -> None:
    base = RateConfig(daily=9, retry_after=True)
    assert parse_rate("3/300", base) == RateConfig(3, 300, 9, True)


def test_fault_strings() -> None:
    text = (
        "error_rate=0.1,fail_first=3,drop_before=0.05,drop_after=0.05,slow=0.01,"
        "malformed=0.02,latency_ms=5-50,seed=7"
    )
    assert parse_faults(text) == FaultConfig(
        error_rate=0.1,
        fail_first=3,
        drop_before=0.05,
        drop_after=0.05,
        slow=0.01,
        malformed=0.02,
        latency_ms=(5, 50),
        seed=7,
    )
    assert parse_faults("latency_ms=20").latency_ms == (20, 20)
    assert parse_faults("") == FaultConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("abc", r"--rate: expected KEY=VALUE, got 'abc'"),
        ("100/", r"--rate interval_ms must be an integer, got ''"),
        ("0/1000", r"--rate: max must be at least 1, got 0"),
        ("100/10000,daily=x", r"--rate daily must be an integer, got 'x'"),
        ("100/10000,burst=1", r"--rate: unknown key 'burst'"),
        ("100/10000,retry_after=yes", r"--rate retry_after must be true or false"),
        ("off,daily=5", r"--rate: 'off' takes no other settings"),
    ],
)
def test_bad_rate_strings(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rate(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("error_rate", r"--faults: expected KEY=VALUE, got 'error_rate'"),
        ("errors=0.1", r"--faults: unknown key 'errors'"),
        ("error_rate=lots", r"--faults error_rate must be a number, got 'lots'"),
        ("slow=1.5", r"--faults: slow must be between 0 and 1, got 1.5"),
        ("error_rate=0.6,slow=0.6", r"--faults: the fractions .* add up to more than 1"),
        ("latency_ms=50-5", r"--faults: latency_ms must be MIN-MAX with 0 <= MIN <= MAX"),
        ("latency_ms=1-2-3", r"--faults latency_ms must be MIN-MAX"),
        ("fail_first=-1", r"--faults: fail_first must be at least 0"),
        ("fail_first_status=200", r"--faults: fail_first_status must be a 4xx or 5xx"),
        ("seed=1.5", r"--faults seed must be an integer"),
    ],
)
def test_bad_fault_strings(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_faults(text)


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sandbox.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_sandbox_table(tmp_path: Path) -> None:
    path = _toml(
        tmp_path,
        """
[sandbox]
port = 8765
token = "t0k3n"
locations = ["sandboxLocation00001", "otherLocation0000002"]
fixture = "data/fixture.json"
seed = 7
strict_unknown = true
record_requests = false

[sandbox.rate]
max = 10
interval_ms = 1000
daily = 500
retry_after = true

[sandbox.faults]
error_rate = 0.1
latency_ms = [5, 50]
""",
    )
    assert load_config(path) == SandboxConfig(
        port=8765,
        token="t0k3n",
        locations=frozenset({"sandboxLocation00001", "otherLocation0000002"}),
        fixture=tmp_path / "data" / "fixture.json",
        strict_unknown=True,
        record_requests=False,
        rate=RateConfig(10, 1000, 500, True),
        faults=FaultConfig(error_rate=0.1, latency_ms=(5, 50), seed=7),
    )


def test_toml_rate_as_a_string_and_no_sandbox_table(tmp_path: Path) -> None:
    assert load_config(_toml(tmp_path, '[sandbox]\nrate = "off"\n')).rate is None
    assert load_config(_toml(tmp_path, '[sandbox]\nrate = "3/300"\n')).rate == RateConfig(3, 300)
    assert load_config(_toml(tmp_path, "[api]\nversion = 'v3'\n")) == SandboxConfig()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sandbox]\nprot = 1\n", r"sandbox: unknown key 'prot'"),
        ("[sandbox]\nport = '80'\n", r"sandbox.port must be an integer, got '80'"),
        ("[sandbox]\nport = 70000\n", r"sandbox: port must be between 0 and 65535"),
        ("[sandbox]\nlocations = 'x'\n", r"sandbox.locations must be a non-empty list of strings"),
        ("[sandbox]\nrate = 5\n", r"sandbox.rate must be a table or a string"),
        ("[sandbox]\nrate = 'fast'\n", r"sandbox.rate: --rate: expected KEY=VALUE"),
        ("[sandbox.rate]\nmax = 0\n", r"sandbox.rate: max must be at least 1"),
        ("[sandbox.faults]\nslow = true\n", r"sandbox.faults.slow must be a number, got True"),
        ("[sandbox]\nseed = 1\n[sandbox.faults]\nseed = 2\n", r"not both"),
        ("sandbox = 3\n", r"'sandbox' must be a table"),
        ("[sandbox\n", r"cannot read sandbox config"),
    ],
)
def test_bad_toml_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(_toml(tmp_path, text))


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"cannot read sandbox config .*nope.toml"):
        load_config(tmp_path / "nope.toml")


def test_options_override_the_file_key_by_key(tmp_path: Path) -> None:
    path = _toml(
        tmp_path,
        "[sandbox]\nport = 1\ntoken = 'file'\n"
        "[sandbox.rate]\nmax = 9\ndaily = 99\n[sandbox.faults]\nseed = 4\nslow = 0.5\n",
    )
    config = config_from_options(
        config_file=path,
        port=2,
        rate="5/500",
        faults="error_rate=0.25",
        fixture=Path("f.json"),
    )
    assert config == SandboxConfig(
        port=2,
        token="file",
        fixture=Path("f.json"),
        rate=RateConfig(max=5, interval_ms=500, daily=99),
        faults=FaultConfig(seed=4, slow=0.5, error_rate=0.25),
    )


def test_options_without_a_file_use_the_defaults() -> None:
    assert config_from_options() == SandboxConfig()
    assert config_from_options(token="T", rate="off").rate is None
    assert config_from_options(token="T").token == "T"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": -1}, r"sandbox option: port must be between 0 and 65535"),
        ({"token": ""}, r"sandbox option: token must not be empty"),
        ({"faults": "x=1"}, r"--faults: unknown key 'x'"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_options(**options)  # type: ignore[arg-type]


# --- locations -----------------------------------------------------------------------------------


def test_the_example_location_is_the_one_in_the_documentations_own_example() -> None:
    seed = (REFERENCE / "bulk-tags-endpoint.seed.txt").read_text(encoding="utf-8")
    assert f'"locationId": "{EXAMPLE_LOCATION}"' in seed
    assert f'default:"{EXAMPLE_LOCATION}"' in seed


def test_the_default_location_is_the_sandboxs_own_when_it_is_served() -> None:
    both = SandboxConfig(locations=frozenset({EXAMPLE_LOCATION, DEFAULT_LOCATION}))
    assert both.default_location == DEFAULT_LOCATION
    assert SandboxConfig().default_location == DEFAULT_LOCATION


def test_without_the_sandboxs_own_location_the_default_is_the_first_in_order() -> None:
    config = SandboxConfig(locations=frozenset({"zLocation", EXAMPLE_LOCATION}))
    assert config.default_location == EXAMPLE_LOCATION


# --- where it listens ----------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "localhost"])
def test_a_loopback_host_needs_no_option(host: str) -> None:
    config = SandboxConfig(host=host)
    assert config.host == host
    assert not config.is_public


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", "my-laptop", ""]
)
def test_a_host_beyond_loopback_is_refused_without_allow_public(host: str) -> None:
    message = (
        f"sandbox.host {host!r} is not a loopback address (127.0.0.0/8, ::1, localhost): other "
        "machines could reach the sandbox; set sandbox.allow_public = true "
        "(batcher sandbox --public) to listen there anyway"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SandboxConfig(host=host)


def test_a_host_beyond_loopback_is_allowed_with_allow_public() -> None:
    config = SandboxConfig(host="0.0.0.0", allow_public=True)
    assert config.is_public


def test_an_ipv4_mapped_loopback_address_is_loopback() -> None:
    assert is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("::ffff:10.0.0.1")


def test_a_public_host_in_toml_is_refused_naming_the_key_and_the_fix(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[sandbox]\nhost = "0.0.0.0"\n')
    with pytest.raises(ValueError, match=r"^sandbox\.host '0\.0\.0\.0' is not a loopback") as no:
        load_config(path)
    assert "allow_public = true" in str(no.value)


def test_a_public_host_in_toml_is_allowed_with_allow_public(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[sandbox]\nhost = "0.0.0.0"\nallow_public = true\n')
    assert load_config(path) == SandboxConfig(host="0.0.0.0", allow_public=True)


def test_the_options_keep_the_files_allow_public(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[sandbox]\nhost = "0.0.0.0"\nallow_public = true\n')
    assert config_from_options(config_file=path, port=8765).allow_public


def test_the_public_option_allows_the_files_public_host(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[sandbox]\nhost = "0.0.0.0"\n')
    config = config_from_options(config_file=path, public=True)
    assert (config.host, config.allow_public) == ("0.0.0.0", True)


def test_public_false_overrides_the_files_allow_public(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[sandbox]\nhost = "0.0.0.0"\nallow_public = true\n')
    with pytest.raises(ValueError, match=r"^sandbox\.host '0\.0\.0\.0' is not a loopback"):
        config_from_options(config_file=path, public=False)


def test_public_true_sets_allow_public() -> None:
    assert config_from_options(public=True).allow_public
    assert not config_from_options().allow_public
