"""The trust policy: what a program may cause, as the person running it allows.

A program — an artifact above all, but a ``.lmp`` source too — is untrusted input
(docs/trust.md). By default it may call the embedded model and LM providers at their
default endpoints, read files inside its own project, and nothing else. The runner
widens that, never the program:

- ``allow_tools``: import and run the program's Python code (tools, Python metrics,
  ensemble reducers) — all of it (True) or the named tools / import paths;
- ``allow_endpoints``: endpoints (URL prefixes) that may receive an ``env.NAME`` secret;
- ``allow_paths``: folders outside the project that files may be read from.

``project`` is the folder the program's files must lie in: the nearest folder above the
program's file that holds a project marker (``.git``, ``pyproject.toml``,
``lmpc.toml``...), below the home folder; with no marker, the file's own folder.
An artifact in a ``build/`` folder with no marker above belongs to the folder above
``build/``. The project comes from where the file lies, never from what the file says.

>>> t = Trust(allow_endpoints=("http://127.0.0.1:8000",))
>>> t.endpoint_allowed("http://127.0.0.1:8000/v1"), t.endpoint_allowed("http://evil:8000/v1")
(True, False)
>>> Trust().code_allowed("search", "tools:search"), Trust(allow_tools=True).code_allowed("s", "m:f")
(False, True)
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lmpc.credentials import is_secret_ref
from lmpc.runtime.errors import RuntimeFailure, ToolNotAllowed

MARKERS = (".git", ".hg", "pyproject.toml", "lmpc.toml", "setup.cfg", "setup.py")
# Setting names whose value says where a request goes, even without a scheme.
ENDPOINT_SETTINGS = frozenset({"api_base", "base_url", "api_host", "endpoint", "url",
                               "aws_bedrock_runtime_endpoint", "aws_endpoint_url",
                               "vertex_ai_endpoint", "azure_endpoint"})
# Providers that sign requests with credentials litellm finds in the environment
# (cloud SDK keys, not an api_key setting): a placeholder key cannot stand in for those.
AMBIENT_CREDENTIAL_PROVIDERS = ("bedrock", "sagemaker", "vertex_ai", "vertex_ai_beta",
                                "azure", "azure_ai", "watsonx", "oci", "snowflake")
# Sent as the api_key to an endpoint the runner did not name, so that litellm attaches
# no key of the environment (OPENAI_API_KEY, ...) on its own.
NO_CREDENTIAL = "lmpc-no-credential"
CONFIG_KEYS = frozenset({"allow_tools", "allow_endpoints", "allow_paths"})


class TrustError(RuntimeFailure):
    """A program asked for an effect the runner did not allow; ``remedy`` says how to
    allow it (the message ends with it)."""

    def __init__(self, message: str, remedy: str = "") -> None:
        super().__init__(f"{message}; {remedy}" if remedy else message)
        self.remedy = remedy


class CodeNotAllowed(TrustError, ToolNotAllowed):
    """Python code (a tool, a metric, a reducer) the runner did not allow."""


class FileNotAllowed(TrustError):
    """A file outside the program's project (or a hidden file inside it)."""


class EndpointNotAllowed(TrustError):
    """An ``env.NAME`` secret (or ambient cloud credentials) bound for an endpoint the
    runner did not name."""


@dataclass(frozen=True)
class Trust:
    """What the runner allows a program to do beyond the defaults (see the module doc)."""

    allow_tools: bool | frozenset[str] = False
    allow_endpoints: tuple[str, ...] = ()
    allow_paths: tuple[Path, ...] = ()
    project: Path | None = None

    # ------------------------------------------------------------ building one

    @classmethod
    def configured(cls, *, allow_tools: bool = False, tools: Iterable[str] = (),
                   endpoints: Iterable[str] = (), paths: Iterable[str | Path] = (),
                   environ: Mapping[str, str] | None = None,
                   config: Path | None | bool = None) -> Trust:
        """The runner's trust: flags, then ``LMPC_ALLOW_*`` variables, then the user's
        config file (``$LMPC_TRUST_FILE``, else ``~/.config/lmpc/trust.toml``).

        ``config=False`` reads no file. Each source can only widen what is allowed.
        """
        env = os.environ if environ is None else environ
        names = set(tools)
        all_tools = allow_tools
        endpoint_list = list(endpoints)
        path_list = [Path(p) for p in paths]
        value = env.get("LMPC_ALLOW_TOOLS", "").strip()
        if value.lower() in ("1", "true", "yes", "all"):
            all_tools = True
        elif value and value.lower() not in ("0", "false", "no"):
            names |= {n.strip() for n in value.split(",") if n.strip()}
        endpoint_list += [e for e in env.get("LMPC_ALLOW_ENDPOINTS", "").replace(",", " ")
                          .split() if e]
        path_list += [Path(p) for p in env.get("LMPC_ALLOW_PATHS", "").split(os.pathsep) if p]
        file = _config_file(env) if config is None else (config or None)
        if isinstance(file, Path) and file.is_file():
            data = _read_config(file)
            tools_value = data.get("allow_tools", False)
            if tools_value is True:
                all_tools = True
            elif isinstance(tools_value, list):
                names |= {str(n) for n in tools_value}
            endpoint_list += [str(e) for e in data.get("allow_endpoints", [])]
            path_list += [Path(str(p)).expanduser() for p in data.get("allow_paths", [])]
        return cls(allow_tools=True if all_tools else frozenset(names),
                   allow_endpoints=tuple(dict.fromkeys(endpoint_list)),
                   allow_paths=tuple(p.expanduser().resolve() for p in path_list))

    def for_file(self, path: str | Path) -> Trust:
        """This trust, for a program read from ``path`` (sets its project)."""
        return dataclasses.replace(self, project=find_project(Path(path)))

    # ------------------------------------------------------------ code

    def code_allowed(self, name: str, import_path: str) -> bool:
        if isinstance(self.allow_tools, bool):
            return self.allow_tools
        return name in self.allow_tools or import_path in self.allow_tools

    def require_code(self, what: str, name: str, import_path: str) -> None:
        """``CodeNotAllowed`` (a ``ToolNotAllowed``) unless the runner allowed this code."""
        if not self.code_allowed(name, import_path):
            raise CodeNotAllowed(f"{what} {name!r} ({import_path}) runs Python code",
                                 f"allow it with --allow-tools (or --allow-tool {name}, "
                                 "LMPC_ALLOW_TOOLS)")

    # ------------------------------------------------------------ files

    def roots(self, base_dir: str | Path) -> list[Path]:
        project = self.project or Path(base_dir).resolve()
        return [project, *self.allow_paths]

    def resolve_file(self, path: str | Path, base_dir: str | Path, what: str) -> Path:
        """The file ``path`` (relative to ``base_dir``) if the program may read it.

        It must resolve (symlinks followed) inside the project, with no hidden part
        (``.env``, ``.git/``, ``.ssh/``) on the way, or inside a folder the runner
        allowed; anything else is ``FileNotAllowed``.
        """
        given = Path(path)
        full = (given if given.is_absolute() else Path(base_dir) / given).resolve()
        project, *allowed = self.roots(base_dir)
        if any(full.is_relative_to(root) for root in allowed):
            return full
        if full.is_relative_to(project):
            hidden = [p for p in full.relative_to(project).parts if p.startswith(".")]
            if not hidden:
                return full
            raise FileNotAllowed(
                f"{what} {str(path)!r} is a hidden file of the project ({hidden[0]})",
                f"allow it with --allow-path {full.parent}")
        raise FileNotAllowed(
            f"{what} {str(path)!r} resolves to {full}, outside the program's project "
            f"({project})", f"allow its folder with --allow-path {full.parent}")

    # ------------------------------------------------------------ endpoints

    def endpoint_allowed(self, url: str) -> bool:
        target = _endpoint_key(url)
        return any(_covers(_endpoint_key(allowed), target) for allowed in self.allow_endpoints)

    def guard_request(self, model: str, settings: dict[str, Any]) -> dict[str, Any]:
        """The settings to send to ``model``, or ``EndpointNotAllowed``.

        An ``env.NAME`` secret goes only to the provider's default endpoint or to one the
        runner allowed. To any other endpoint the request goes without credentials of
        the environment: an explicit placeholder key keeps litellm from adding one.
        """
        endpoints = request_endpoints(settings)
        blocked = [e for e in endpoints if not self.endpoint_allowed(e)]
        if not blocked:
            return settings
        names = env_names(settings)
        if names:
            raise EndpointNotAllowed(
                f"LM {model}: would send the environment secret(s) "
                f"{', '.join(sorted(names))} to {blocked[0]}, an endpoint you have not "
                "allowed", f"allow it with --allow-endpoint {blocked[0]} (or "
                "LMPC_ALLOW_ENDPOINTS)")
        provider = model.partition("/")[0]
        if provider in AMBIENT_CREDENTIAL_PROVIDERS:
            raise EndpointNotAllowed(
                f"LM {model}: a custom endpoint {blocked[0]} would be sent this machine's "
                f"{provider} credentials", f"allow it with --allow-endpoint {blocked[0]}")
        if settings.get("api_key") is None:
            return {**settings, "api_key": NO_CREDENTIAL}
        return settings


def request_endpoints(settings: Any, key: str = "") -> list[str]:
    """Every endpoint named in ``settings``: values of endpoint settings, and any string
    that is a URL (at any depth, fallbacks included). ``env.NAME`` values are the
    runner's own and are not listed."""
    found: list[str] = []
    if is_secret_ref(settings):
        return found
    if isinstance(settings, dict):
        for k, v in settings.items():
            found += request_endpoints(v, str(k))
    elif isinstance(settings, list | tuple):
        for v in settings:
            found += request_endpoints(v, key)
    elif isinstance(settings, str):
        if "://" in settings or (key.lower() in ENDPOINT_SETTINGS and settings.strip()):
            found.append(settings.strip())
    return list(dict.fromkeys(found))


def env_names(settings: Any) -> set[str]:
    """The environment variables ``settings`` reads (``{"env": NAME}`` at any depth)."""
    if is_secret_ref(settings):
        return {str(settings["env"])}
    if isinstance(settings, dict):
        return {n for v in settings.values() for n in env_names(v)}
    if isinstance(settings, list | tuple):
        return {n for v in settings for n in env_names(v)}
    return set()


def _endpoint_key(url: str) -> tuple[str, str, int | None, str]:
    text = url.strip()
    if "://" not in text:
        text = "//" + text  # "host:port/path": no scheme, matches either
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        return ("", text.lower(), None, "")
    scheme = parts.scheme.lower()
    if port is None and scheme in ("http", "https"):
        port = 80 if scheme == "http" else 443
    return (scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/"))


def _covers(allowed: tuple[str, str, int | None, str], target: tuple[str, str, int | None, str]
            ) -> bool:
    scheme, host, port, path = allowed
    if not host or host != target[1]:
        return False
    if (scheme and scheme != target[0]) or (port is not None and port != target[2]):
        return False
    return not path or target[3] == path or target[3].startswith(path + "/")


def find_project(path: Path) -> Path:
    """The project folder of a program file (see the module doc)."""
    start = path.resolve().parent if not path.is_dir() else path.resolve()
    home = Path.home().resolve()
    current = start
    while current != current.parent and current != home:
        if any((current / marker).exists() for marker in MARKERS):
            return current
        current = current.parent
    # `lmpc build` writes into build/ of the project by default: with no marker, a
    # build/ folder belongs to the folder above it (never home, never /)
    parent = start.parent
    if start.name == "build" and parent not in (home, parent.parent):
        return parent
    return start


def _config_file(environ: Mapping[str, str]) -> Path | None:
    explicit = environ.get("LMPC_TRUST_FILE")
    if explicit:
        return Path(explicit).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "lmpc" / "trust.toml"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise TrustError(f"{path}: cannot read the trust configuration: {exc}") from None
    unknown = sorted(set(data) - CONFIG_KEYS)
    if unknown:
        raise TrustError(f"{path}: unknown setting(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(CONFIG_KEYS))})")
    tools = data.get("allow_tools", False)
    if not isinstance(tools, bool) and not (isinstance(tools, list) and
                                            all(isinstance(t, str) for t in tools)):
        raise TrustError(f"{path}: allow_tools must be true, false or a list of names")
    for key in ("allow_endpoints", "allow_paths"):
        value = data.get(key, [])
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise TrustError(f"{path}: {key} must be a list of strings")
    return data
