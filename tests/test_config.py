"""Settings: defaults, TOML, environment and options, in that order of precedence."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from batcher.app.settings import load_settings
from batcher.domain.config import Settings, read_token
from batcher.domain.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "batcher.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_spec_values() -> None:
    settings = load_settings(Path(ROOT / "config.example.toml"), environ={})
    assert settings.api.base_url == "https://services.leadconnectorhq.com"
    assert settings.api.version == "2021-07-28"
    assert settings.api.token_env == "BATCHER_TOKEN"
    assert settings.api.timeout_s == 30.0
    assert settings.batch.size == 500
    assert settings.limits == type(settings.limits)(8, 100, 10_000)
    assert settings.retry.attempts == 6
    assert settings.state.dir == ".batcher"


def test_the_example_file_documents_every_key_with_its_default() -> None:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    defaults = Settings()
    for section in dataclasses.fields(defaults):
        if not section.metadata.get("section", True):
            continue  # `environ`: where tokens are read, no config section
        assert f"[{section.name}]" in text
        for key in dataclasses.fields(getattr(defaults, section.name)):
            assert f"\n{key.name} = " in text, f"{section.name}.{key.name} is not in the example"
    assert load_settings(ROOT / "config.example.toml", environ={}) == defaults


def test_no_file_and_no_environment_gives_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}) == Settings()


def test_batcher_toml_in_the_working_directory_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "[limits]\nconcurrency = 3\n")
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).limits.concurrency == 3


def test_option_beats_environment_beats_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[api]\nbase_url = "https://file"\nlocation_id = "fromFile"\n')
    env = {"BATCHER_API_BASE_URL": "https://env", "BATCHER_API_LOCATION_ID": "fromEnv"}
    settings = load_settings(path, environ=env, overrides={"api.base_url": "https://option"})
    assert settings.api.base_url == "https://option"
    assert settings.api.location_id == "fromEnv"


def test_a_whole_number_is_taken_where_seconds_are_due(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, "[api]\ntimeout_s = 5\n"), environ={})
    assert settings.api.timeout_s == 5.0
    assert isinstance(settings.api.timeout_s, float)


def test_none_overrides_are_ignored(tmp_path: Path) -> None:
    path = write(tmp_path, '[api]\nbase_url = "https://file"\n')
    assert load_settings(path, environ={}, overrides={"api.base_url": None}).api.base_url == (
        "https://file"
    )


def test_environment_text_is_converted_to_the_key_type() -> None:
    env = {"BATCHER_RETRY_ATTEMPTS": " 9 ", "BATCHER_API_TIMEOUT_S": "2.5"}
    settings = load_settings(Path(ROOT / "config.example.toml"), environ=env)
    assert settings.retry.attempts == 9
    assert settings.api.timeout_s == 2.5


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("[api]\nbase_url = 5\n", {}, "api.base_url: expected str, got 5"),
        ("[limits]\nconcurency = 3\n", {}, "limits.concurency: unknown key"),
        ("[limit]\n", {}, "limit: unknown section"),
        ("[batch]\nsize = 501\n", {}, "batch.size: must be between 1 and 500"),
        ("[batch]\nsize = true\n", {}, "batch.size: expected int, got True"),
        ("[batch]\nsize = 2.5\n", {}, "batch.size: expected int, got 2.5"),
        ("", {"BATCHER_BATCH_SIZE": "2.5"}, "batch.size (from $BATCHER_BATCH_SIZE): expected int"),
        ("[limits]\nconcurrency = 0\n", {}, "limits.concurrency: must be at least 1"),
        (
            '[api]\nversion = "2020"\n',
            {},
            'api.version: must be one of "2021-07-28", "2021-04-15", "2023-02-21", "v3"',
        ),
        ('[api]\nbase_url = "ftp://x"\n', {}, "api.base_url: must start with http"),
        ('[input]\nid_pattern = "("\n', {}, "input.id_pattern: not a valid regular expression"),
        ('[input]\nencoding = "klingon"\n', {}, "input.encoding: unknown encoding 'klingon'"),
        ("", {"BATCHER_LIMITS_CONCURRENCY": "many"}, "limits.concurrency (from $BATCHER_"),
        ("[retry]\nmax_backoff_s = 0.5\n", {}, "retry.max_backoff_s: must be >="),
        ("api = 3\n", {}, "api: expected a [api] table"),
    ],
)
def test_a_wrong_key_or_value_names_its_path(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text), environ=env)
    assert message in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_file_that_is_not_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "this is not = = toml")
    with pytest.raises(ConfigError, match=r"batcher\.toml: not valid TOML"):
        load_settings(path, environ={})


def test_a_missing_config_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.toml: config file not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_the_sandbox_section_is_left_to_the_sandbox(tmp_path: Path) -> None:
    path = write(tmp_path, "[sandbox]\nport = 8765\n")
    assert load_settings(path, environ={}) == Settings()


def test_the_token_comes_from_the_named_variable(tmp_path: Path) -> None:
    path = write(tmp_path, '[api]\ntoken_env = "MY_TOKEN"\n')
    settings = load_settings(path, environ={})
    assert read_token(settings, {"MY_TOKEN": " secret "}) == "secret"


def test_a_missing_token_names_the_variable_and_never_a_value(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), environ={})
    with pytest.raises(ConfigError) as caught:
        read_token(settings, {"OTHER": "secret-value"})
    assert "BATCHER_TOKEN is not set" in str(caught.value)
    assert "secret-value" not in str(caught.value)


def test_a_config_file_with_a_bom_is_read(tmp_path: Path) -> None:
    """Windows editors save UTF-8 with a BOM: that is still the same TOML."""
    path = tmp_path / "batcher.toml"
    path.write_bytes(b"\xef\xbb\xbf[limits]\nconcurrency = 3\n")
    assert load_settings(path, environ={}).limits.concurrency == 3


def test_a_config_file_that_is_not_utf8_names_the_line_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "batcher.toml"
    path.write_bytes(b'[api]\nlocation_id = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 25, line 2\); save it as UTF-8"):
        load_settings(path, environ={})


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_a_number_that_is_not_finite_is_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=r"api\.timeout_s: expected a finite number"):
        load_settings(write(tmp_path, f"[api]\ntimeout_s = {value}\n"), environ={})


def test_plain_http_to_another_machine_is_refused_unless_allowed(tmp_path: Path) -> None:
    """The token would travel in clear: https, loopback, or an explicit allow_insecure."""
    with pytest.raises(ConfigError, match=r"api.base_url: http://crm.example.com is plain http"):
        load_settings(environ={}, overrides={"api.base_url": "http://crm.example.com"})
    for url in ("http://127.0.0.1:8765", "http://localhost:1", "http://[::1]:2", "https://x.y"):
        assert load_settings(environ={}, overrides={"api.base_url": url}).api.base_url == url
    allowed = load_settings(
        write(tmp_path, 'api.allow_insecure = true\napi.base_url = "http://crm.example.com"\n'),
        environ={},
    )
    assert allowed.api.allow_insecure is True


def test_a_boolean_key_reads_true_or_false_from_the_environment() -> None:
    env = {"BATCHER_API_ALLOW_INSECURE": "True"}
    assert load_settings(environ=env).api.allow_insecure is True
    with pytest.raises(ConfigError, match="expected true or false"):
        load_settings(environ={"BATCHER_API_ALLOW_INSECURE": "yes"})


def test_a_world_writable_config_file_is_refused(tmp_path: Path) -> None:
    """Anyone could point the token elsewhere through it (as ssh refuses such files)."""
    path = write(tmp_path, "[limits]\nconcurrency = 3\n")
    path.chmod(0o666)
    with pytest.raises(ConfigError, match=r"writable by anyone; fix it with `chmod 600"):
        load_settings(path, environ={})


def test_a_group_writable_config_file_is_read_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, "[limits]\nconcurrency = 3\n")
    path.chmod(0o664)
    warnings: list[str] = []
    assert load_settings(path, environ={}, warn=warnings.append).limits.concurrency == 3
    assert warnings == [
        f"{path}: config file is writable by its group; consider `chmod 600 {path}`"
    ]


def test_a_config_file_of_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, "[limits]\nconcurrency = 3\n")
    if os.geteuid() == 0:
        os.chown(path, 4242, 4242)  # root's own files are trusted: give it to someone else
    else:
        monkeypatch.setattr("batcher.support.files.os.getuid", lambda: os.getuid() + 4242)
    with pytest.raises(ConfigError, match="belongs to another user"):
        load_settings(path, environ={})


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("[run]\nmax_error_rate = 1.5\n", "run.max_error_rate"),
        ("[run]\nmax_error_rate = -0.1\n", "run.max_error_rate"),
        ("[run]\nerror_window = 0\n", "run.error_window"),
    ],
)
def test_the_error_rate_settings_are_range_checked(tmp_path: Path, text: str, path: str) -> None:
    config = tmp_path / "batcher.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=path):
        load_settings(config, environ={})


def test_the_error_rate_defaults_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./batcher.toml
    assert load_settings(None, environ={}).run.max_error_rate == 0.5
    env = {"BATCHER_RUN_MAX_ERROR_RATE": "1"}
    assert load_settings(None, environ=env).run.max_error_rate == 1.0
