"""framelab.platform.auth: the token is found where Ray looks for it, and never shown."""

from __future__ import annotations

from framelab.platform.auth import auth_hint, token_source, use_token_if_available


def test_the_token_is_looked_for_in_rays_order_and_only_its_source_is_named(tmp_path, monkeypatch):
    token_file = tmp_path / "token"
    token_file.write_text("not-a-real-token-0123")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    env = {"RAY_AUTH_TOKEN": "not-a-real-token-0123", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    assert token_source(env) == "the RAY_AUTH_TOKEN environment variable"
    assert token_source({"RAY_AUTH_TOKEN_PATH": str(token_file)}) == f"{token_file} (RAY_AUTH_TOKEN_PATH)"
    assert token_source({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}) is None
    assert token_source({}) is None  # no ~/.ray/auth_token under this HOME
    default = tmp_path / "home" / ".ray" / "auth_token"
    default.parent.mkdir(parents=True)
    default.write_text("not-a-real-token-0123")
    assert token_source({}) == str(default)
    for text in (token_source(env), token_source({}), auth_hint()):
        assert "not-a-real-token-0123" not in text


def test_an_explicit_auth_mode_is_left_as_the_user_set_it(monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("not-a-real-token-0123")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(token_file))
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert use_token_if_available() is None
    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    assert use_token_if_available() == f"{token_file} (RAY_AUTH_TOKEN_PATH)"
