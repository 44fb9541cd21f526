"""Credentials in LM settings: how lmpc recognizes one, and keeps it out of text.

A credential is written ``env.NAME`` (kept as ``{"env": "NAME"}``) and read from the
environment only when a call is made. Anything else that looks like one is refused
before it reaches an artifact: a literal under a credential-like name at any depth
(``api_key``, ``extra_headers.Authorization``, ``vertex_credentials``,
``aws_secret_access_key``), a value shaped like a known key (``sk-...``, ``ghp_...``,
``Bearer ...``), and a URL carrying a password or a key in its query.

>>> credential_problems({"api_key": {"env": "OPENAI_API_KEY"}, "max_tokens": 8})
[]
>>> credential_problems({"extra_headers": {"Authorization": "Bearer abc"}})
[('extra_headers.Authorization', 'a literal credential')]
>>> credential_problems({"api_base": "https://u:pw@example.com/v1?key=1"})[0][1]
'a URL with a user name or password in it'
>>> mask("Text with key x in it", ["x"])
'Text with key *** in it'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlsplit

# A credential-like setting or header name: the whole name, or its last word.
_NAME = re.compile(
    r"(^|[_\-.])(key|apikey|token|secret|password|passwd|pwd|credential|credentials|auth|"
    r"authorization|cookie|session|signature|sig|sas|bearer|private)$"
    r"|^(authorization|proxy-authorization|cookie|x-api-key|api-key|x-goog-api-key|"
    r"ocp-apim-subscription-key)$",
    re.IGNORECASE,
)
# Names that end like a credential but are counts or switches, not secrets.
_NOT_SECRET = frozenset({"max_tokens", "max_completion_tokens", "top_k", "logit_bias"})
# Shapes of well-known keys and authorization values.
_SHAPE = re.compile(
    r"^(sk-|sk_live_|sk_test_|rk_live_|pk_live_|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|"
    r"glpat-|xox[abprs]-|hf_[A-Za-z0-9]{8}|AKIA[0-9A-Z]{12}|ASIA[0-9A-Z]{12}|AIza|ya29\.|"
    r"Bearer\s|Basic\s|Token\s)"
)
_QUERY_SECRET = re.compile(
    r"^(key|api[-_]?key|apikey|token|access[-_]?token|auth|sig|signature|secret|"
    r"password|pwd|code)$", re.IGNORECASE)


LONG_SECRET = 8  # masked even inside other text


def is_secret_ref(value: Any) -> bool:
    """True for a ``{"env": NAME}`` setting (a secret read from the environment)."""
    return isinstance(value, dict) and len(value) == 1 and "env" in value


def is_credential_name(name: str) -> bool:
    """Does a setting or header called ``name`` hold a credential?

    >>> [is_credential_name(n) for n in ("api_key", "X-Api-Key", "max_tokens", "top_k")]
    [True, True, False, False]
    """
    return name.lower() not in _NOT_SECRET and bool(_NAME.search(name))


def credential_problems(settings: Any, path: str = "") -> list[tuple[str, str]]:
    """(dotted setting path, why) for every literal credential in ``settings``."""
    found: list[tuple[str, str]] = []
    if is_secret_ref(settings):
        return found
    if isinstance(settings, dict):
        for key, value in settings.items():
            where = f"{path}.{key}" if path else str(key)
            if is_credential_name(str(key)) and _literal(value):
                found.append((where, "a literal credential"))
            else:
                found += credential_problems(value, where)
    elif isinstance(settings, list | tuple):
        for i, value in enumerate(settings):
            found += credential_problems(value, f"{path}[{i}]")
    elif isinstance(settings, str):
        why = _string_problem(settings)
        if why:
            found.append((path, why))
    return found


def _literal(value: Any) -> bool:
    """A value written in place (not ``env.NAME``, not empty, not a switch)."""
    if is_secret_ref(value) or value is None or isinstance(value, bool):
        return False
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, dict):
        return any(_literal(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_literal(v) for v in value)
    return True  # a number: still a literal (a PIN, a numeric key)


def _string_problem(text: str) -> str | None:
    if _SHAPE.match(text.strip()):
        return "a value shaped like a key"
    if "://" not in text:
        return None
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        return None
    if parts.username or parts.password:
        return "a URL with a user name or password in it"
    if any(_QUERY_SECRET.match(k) for k, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return "a URL with a key in its query"
    return None


def literal_secrets(settings: Any) -> list[str]:
    """The literal credential values in ``settings`` (to mask them in messages)."""
    values: list[str] = []
    if isinstance(settings, dict) and not is_secret_ref(settings):
        for key, value in settings.items():
            if is_credential_name(str(key)) and isinstance(value, str | int) \
                    and not isinstance(value, bool):
                values.append(str(value))
            else:
                values += literal_secrets(value)
    elif isinstance(settings, list | tuple):
        for value in settings:
            values += literal_secrets(value)
    elif isinstance(settings, str) and _string_problem(settings):
        values.append(settings)
    return values


def mask(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``.

    A secret of 8 characters or more is masked wherever it appears (no word is that
    long by chance); a shorter one only where it stands alone, between spaces, quotes or
    punctuation, so that a one-letter test key cannot turn "Text" into "Te***t".
    ``Bearer <key>`` masks the bare key too.
    """
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        # the whole secret before the key inside it (a set's order follows the hash seed)
        for part in sorted({secret, *_auth_value(secret)}, key=len, reverse=True):
            if len(part) >= LONG_SECRET:
                text = text.replace(part, "***")
            else:
                pattern = rf"(?<![\w\-.]){re.escape(part)}(?![\w\-]|\.\w)"
                text = re.sub(pattern, "***", text)
    return text


def _auth_value(secret: str) -> list[str]:
    """The key inside ``Bearer <key>``: servers echo either."""
    head, _, rest = secret.partition(" ")
    return [rest] if head in ("Bearer", "Basic", "Token") and rest else []
