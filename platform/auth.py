"""Ray's token authentication, seen from a framelab client (a session, ``framelab submit``).

Ray 2.60 turns token authentication on by default only for the local clusters
``ray.init()`` starts. A process that joins a cluster by its address sends a
token only when ``RAY_AUTH_MODE=token`` is set, and otherwise waits out Ray
Client's 30-second connection timeout with no word about authentication.
framelab reads the token the way Ray does (``RAY_AUTH_TOKEN``, else the file
named by ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``) and, when one is
there, turns token mode on for its own connections. The token itself is never
read into Python, printed or logged: only where it comes from.
"""

from __future__ import annotations

import os
from pathlib import Path

MODE_ENV = "RAY_AUTH_MODE"
TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"


def default_token_path() -> Path:
    """Where ``ray get-auth-token --generate`` and local clusters keep the token.

    Example:
        >>> from framelab.platform.auth import default_token_path
        >>> default_token_path().name
        'auth_token'
    """
    return Path.home() / ".ray" / "auth_token"


def token_source(environ: dict[str, str] | None = None) -> str | None:
    """Where Ray would read its authentication token from, or None when there is none.

    The order is Ray's: the ``RAY_AUTH_TOKEN`` variable, else the file named by
    ``RAY_AUTH_TOKEN_PATH``, else ``~/.ray/auth_token``. Only the source is
    returned, never the token.

    Example:
        >>> from framelab.platform.auth import token_source
        >>> token_source({"RAY_AUTH_TOKEN": "s3cret"})
        'the RAY_AUTH_TOKEN environment variable'
        >>> token_source({"RAY_AUTH_TOKEN_PATH": "/nonexistent/token"}) is None
        True
    """
    env = os.environ if environ is None else environ
    if env.get(TOKEN_ENV, "").strip():
        return f"the {TOKEN_ENV} environment variable"
    if env.get(TOKEN_PATH_ENV):
        # Ray does not fall back to the default file when this variable names one.
        path = Path(env[TOKEN_PATH_ENV]).expanduser()
        return f"{path} ({TOKEN_PATH_ENV})" if _non_empty(path) else None
    path = default_token_path()
    return str(path) if _non_empty(path) else None


def use_token_if_available() -> str | None:
    """Send Ray's token on this process's connections when one is found; returns its source.

    Does nothing when ``RAY_AUTH_MODE`` is already set (the user's choice wins,
    as in Ray). A cluster without authentication ignores the token, so sending
    one is harmless.

    Example:
        >>> from framelab.platform.auth import use_token_if_available
        >>> use_token_if_available()  # doctest: +SKIP
        '/home/me/.ray/auth_token'
    """
    mode = os.environ.get(MODE_ENV)
    if mode is not None:
        return token_source() if mode.lower() == "token" else None
    source = token_source()
    if source is None:
        return None
    os.environ[MODE_ENV] = "token"
    _reload_ray_auth_config()
    return source


def auth_hint() -> str:
    """One sentence for an error message: which token was sent, or how to give one.

    Example:
        >>> from framelab.platform.auth import auth_hint
        >>> "RAY_AUTH_TOKEN" in auth_hint()
        True
    """
    source = token_source() if os.environ.get(MODE_ENV, "token").lower() == "token" else None
    if source is None:
        return (
            "If the cluster uses token authentication, give its token in RAY_AUTH_TOKEN, in a file named "
            f"by RAY_AUTH_TOKEN_PATH, or in {default_token_path()} (`ray get-auth-token` prints it on the "
            "head node)."
        )
    return (
        f"The authentication token was read from {source}; if the cluster rejects it, give the cluster's "
        "token in RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH."
    )


def _non_empty(path: Path) -> bool:
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def _reload_ray_auth_config() -> None:
    # Ray caches both the mode (in its C++ config) and the token; refresh both so
    # this process sees token mode, as Ray's own `ray start` does after enabling it.
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
