"""Checks on docker-compose.yml, Dockerfile and .dockerignore that a user of `docker compose up` relies on.

No container engine runs in the test environment, so these read the files: the compose file is parsed
with PyYAML and its `${VAR...}` references are resolved the way Compose does, the Dockerfile is split
into instructions. Each check names what would break for a user if it failed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import posixpath
import re
import shlex
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_PATH = REPO / "docker-compose.yml"
DOCKERFILE_PATH = REPO / "Dockerfile"
DOCKERIGNORE_PATH = REPO / ".dockerignore"

API_PORT = 8000
QDRANT_DEFAULT_HTTP_PORT = 6333
# An environment in which the one required variable is set, as a user's .env would.
USER_ENV = {"RIMAS_API_KEYS": "k-123:admin"}

# ---------------------------------------------------------------- helpers


class MissingRequiredVariable(Exception):
    """A `${VAR:?msg}` / `${VAR?msg}` reference whose variable is not set."""


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Resolve Compose variable references in `value` against `env`."""

    def replace(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        name = match.group("braced") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        missing = not current if op in (":-", ":?") else current is None
        if op in (":-", "-"):
            return arg if missing else str(current)
        if op in (":?", "?"):
            if missing:
                raise MissingRequiredVariable(f"{name}: {arg}")
            return str(current)
        return current or ""

    return _INTERPOLATION.sub(replace, value)


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_PATH.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


def service(name: str) -> dict[str, Any]:
    services = load_compose().get("services") or {}
    assert name in services, f"service {name!r} missing; have {sorted(services)}"
    svc = services[name]
    assert isinstance(svc, dict)
    return svc


def service_env(name: str, env: Mapping[str, str]) -> dict[str, str]:
    """The service's `environment`, resolved against `env` (both list and mapping forms)."""
    raw = service(name).get("environment") or {}
    if isinstance(raw, list):
        pairs = [item.split("=", 1) if "=" in item else [item, env.get(item, "")] for item in raw]
        raw = dict(pairs)
    return {key: interpolate("" if val is None else str(val), env) for key, val in raw.items()}


def raw_service_env(name: str) -> dict[str, str]:
    raw = service(name).get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {key: "" if val is None else str(val) for key, val in raw.items()}


def healthcheck_command(name: str) -> list[str]:
    check = service(name).get("healthcheck")
    assert check, f"service {name!r} has no healthcheck"
    assert not check.get("disable"), f"service {name!r} disables its healthcheck"
    test = check.get("test")
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    assert isinstance(test, list) and test, f"{name}: healthcheck.test must be a non-empty list or string"
    assert test[0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck.test must start with CMD or CMD-SHELL"
    return [str(part) for part in test]


def image_tag(name: str) -> tuple[str, str]:
    image = str(service(name).get("image", ""))
    repo, sep, tag = image.rpartition(":")
    assert sep and "/" not in tag, f"{name}: image {image!r} must carry an explicit tag"
    return repo, tag


def volume_targets(name: str) -> dict[str, str]:
    """Mount target -> source for each volume of a service (short and long syntax)."""
    out: dict[str, str] = {}
    for vol in service(name).get("volumes") or []:
        if isinstance(vol, dict):
            out[str(vol["target"])] = str(vol.get("source", ""))
        else:
            parts = str(vol).split(":")
            out[parts[1] if len(parts) > 1 else parts[0]] = parts[0] if len(parts) > 1 else ""
    return out


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE_PATH.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def runtime_stage() -> list[tuple[str, str]]:
    """Instructions of the last stage: the image that actually runs."""
    instructions = dockerfile_instructions()
    starts = [i for i, (kw, _) in enumerate(instructions) if kw == "FROM"]
    assert starts, "Dockerfile has no FROM"
    return instructions[starts[-1] :]


def exec_form(args: str) -> list[str]:
    """Parse a JSON-array (exec form) argument list, or shell-split the shell form."""
    if args.startswith("["):
        parsed = yaml.safe_load(args)  # a JSON array is valid YAML
        assert isinstance(parsed, list)
        return [str(a) for a in parsed]
    return shlex.split(args)


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE_PATH.read_text(encoding="utf-8").splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _ignore_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex over context-relative paths (`**`, `*`, `?`; leading / dropped)."""
    out, i, pattern = "", 0, pattern.strip("/")
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] in "*?":
            out, i = out + ("[^/]*" if pattern[i] == "*" else "[^/]"), i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out + r"\Z")


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` (context-relative) out of the build context: the last pattern
    matching the path or one of its parent folders decides, `!` patterns re-including."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in dockerignore_patterns():
        negated = pattern.startswith("!")
        regex = _ignore_regex(pattern.removeprefix("!"))
        if any(regex.match(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def runtime_env() -> dict[str, str]:
    """Variables the runtime stage sets with ENV (both `ENV K=V ...` and the legacy `ENV K V`)."""
    env: dict[str, str] = {}
    for kw, args in runtime_stage():
        if kw != "ENV":
            continue
        words = shlex.split(args)
        if "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            env[key] = value
    return env


def image_path(context_path: str) -> str | None:
    """Where the runtime stage's COPY instructions put a file of the build context (None: not copied).

    COPY of a folder copies its contents into the destination; relative destinations follow WORKDIR; a file
    left out by .dockerignore is not in the context, so it is never copied.
    """
    if dockerignored(context_path):
        return None
    workdir, found = "/", None
    for kw, args in runtime_stage():
        if kw == "WORKDIR":
            workdir = posixpath.join(workdir, args)
        if kw != "COPY" or "--from=" in args:
            continue
        words = [w for w in exec_form(args) if not w.startswith("--")]
        sources, dest = words[:-1], posixpath.join(workdir, words[-1])
        into_folder = dest.endswith("/") or len(sources) > 1
        for source in (src.rstrip("/").removeprefix("./") for src in sources):
            if (REPO / source).is_dir() and (context_path + "/").startswith(source + "/"):
                found = posixpath.join(dest, posixpath.relpath(context_path, source))
            elif context_path == source:
                found = posixpath.join(dest, posixpath.basename(source)) if into_folder else dest
    return posixpath.normpath(found) if found else None


# ---------------------------------------------------------------- compose: services and health


def test_compose_defines_the_three_services_without_obsolete_version_key() -> None:
    data = load_compose()
    assert {"postgres", "qdrant", "api"} <= set(data.get("services") or {})
    assert "version" not in data, "the Compose spec dropped `version:`; current docker compose warns on it"


def test_postgres_healthcheck_probes_the_configured_user_and_database() -> None:
    cmd = healthcheck_command("postgres")
    words = shlex.split(cmd[1]) if cmd[0] == "CMD-SHELL" else cmd[1:]
    assert words[0] == "pg_isready"
    env = service_env("postgres", USER_ENV)
    assert words[words.index("-U") + 1] == env["POSTGRES_USER"]
    assert words[words.index("-d") + 1] == env["POSTGRES_DB"]


def test_qdrant_healthcheck_asks_readyz_without_curl() -> None:
    cmd = healthcheck_command("qdrant")
    script = cmd[-1]
    port = int(service_env("qdrant", USER_ENV).get("QDRANT__SERVICE__HTTP_PORT", QDRANT_DEFAULT_HTTP_PORT))
    assert cmd[0] == "CMD" and cmd[1] == "bash", "the qdrant image has bash but no curl/wget"
    assert f"/dev/tcp/127.0.0.1/{port}" in script
    assert "GET /readyz" in script and "200 OK" in script
    # the YAML must leave \r\n for printf to expand, not turn it into raw control characters
    assert "\\r\\n\\r\\n" in script and "\r" not in script
    assert not re.search(r"\b(curl|wget)\b", script)


def test_api_waits_for_healthy_postgres_and_qdrant() -> None:
    depends = service("api").get("depends_on")
    assert isinstance(depends, dict), "depends_on needs the long form to carry conditions"
    for dep in ("postgres", "qdrant"):
        assert (depends.get(dep) or {}).get("condition") == "service_healthy", dep


@pytest.mark.parametrize("user_env", [USER_ENV, {**USER_ENV, "POSTGRES_PASSWORD": "Xy7-only-here"}])
def test_database_url_matches_postgres_service(user_env: dict[str, str]) -> None:
    pg = service_env("postgres", user_env)
    url = urlsplit(service_env("api", user_env)["DATABASE_URL"])
    assert url.scheme in ("postgresql", "postgres")
    assert url.hostname == "postgres"
    assert url.port in (None, 5432)
    assert url.username == pg["POSTGRES_USER"]
    assert url.password == pg["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == pg["POSTGRES_DB"]


def test_a_users_postgres_password_reaches_the_database_and_the_api() -> None:
    env = {**USER_ENV, "POSTGRES_PASSWORD": "Xy7-only-here"}
    assert service_env("postgres", env)["POSTGRES_PASSWORD"] == "Xy7-only-here"
    assert urlsplit(service_env("api", env)["DATABASE_URL"]).password == "Xy7-only-here"


def test_qdrant_url_points_at_the_qdrant_service_http_port() -> None:
    url = urlsplit(service_env("api", USER_ENV)["QDRANT_URL"])
    port = int(service_env("qdrant", USER_ENV).get("QDRANT__SERVICE__HTTP_PORT", QDRANT_DEFAULT_HTTP_PORT))
    assert url.scheme == "http"
    assert url.hostname == "qdrant"
    assert url.port == port


def test_api_healthcheck_hits_ok_on_the_served_port() -> None:
    cmd = healthcheck_command("api")
    joined = " ".join(cmd[1:])
    assert f"127.0.0.1:{API_PORT}/ok" in joined
    assert not re.search(r"\b(curl|wget)\b", joined), "python:3.11-slim has no curl or wget"


def _published_ports(name: str) -> list[tuple[str, str, str]]:
    """(host_ip, host_port, container_port) for each published port."""
    out = []
    for entry in service(name).get("ports") or []:
        if isinstance(entry, dict):
            out.append((str(entry.get("host_ip", "")), str(entry.get("published", "")), str(entry["target"])))
            continue
        parts = str(entry).split(":")
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2]))
        elif len(parts) == 2:
            out.append(("", parts[0], parts[1]))
        else:
            out.append(("", "", parts[0]))
    return out


def test_api_publishes_8000_on_loopback_only_and_nothing_else_is_published() -> None:
    ports = _published_ports("api")
    assert (("127.0.0.1", str(API_PORT), str(API_PORT))) in ports
    for host_ip, _, container_port in ports:
        assert host_ip == "127.0.0.1", f"api port {container_port} would be reachable from the network"
    for other in ("postgres", "qdrant"):
        for host_ip, _, container_port in _published_ports(other):
            assert host_ip == "127.0.0.1", f"{other} port {container_port} is reachable from the network"


# ---------------------------------------------------------------- compose: secrets


def test_the_worker_service_executes_runs_with_the_apis_configuration() -> None:
    """`docker compose up --scale worker=N`: workers share the api's database, Qdrant and keys, publish
    nothing, start once the api has migrated, and get time to drain on stop."""
    worker = service("worker")
    assert worker["command"] == ["rimas", "worker"]
    assert service_env("worker", USER_ENV) == service_env("api", USER_ENV)
    assert not worker.get("ports"), "a worker serves no HTTP; nothing to publish"
    assert worker["depends_on"]["api"]["condition"] == "service_healthy"
    assert worker["healthcheck"] == {"disable": True}  # the image's healthcheck asks /ok, which a worker lacks
    assert int(str(worker["stop_grace_period"]).rstrip("s")) > 10  # RIMAS_DRAIN_SECONDS defaults to 10


def test_api_keys_come_from_the_environment_and_are_required() -> None:
    env_without_keys = {k: v for k, v in USER_ENV.items() if k != "RIMAS_API_KEYS"}
    with pytest.raises(MissingRequiredVariable, match="RIMAS_API_KEYS"):
        service_env("api", env_without_keys)
    with pytest.raises(MissingRequiredVariable, match="RIMAS_API_KEYS"):
        service_env("api", {**env_without_keys, "RIMAS_API_KEYS": ""})
    assert service_env("api", USER_ENV)["RIMAS_API_KEYS"] == USER_ENV["RIMAS_API_KEYS"]


def test_no_api_key_or_token_value_is_committed() -> None:
    """Every *KEY* / *TOKEN* / *SECRET* variable resolves to nothing unless the user supplies it."""
    checked: set[str] = set()
    for name in load_compose()["services"]:
        raw = raw_service_env(name)
        resolved = service_env(name, USER_ENV)
        for var in (v for v in resolved if re.search(r"KEY|TOKEN|SECRET", v)):
            supplied = USER_ENV.get(var, "")
            assert resolved[var] == supplied, f"{name}.{var} resolves to a committed value {resolved[var]!r}"
            assert raw[var].startswith("${"), f"{name}.{var} must be taken from the environment"
            checked.add(var)
    assert {"RIMAS_API_KEYS", "OPENAI_API_KEY"} <= checked, checked


def test_openai_settings_pass_through_with_empty_defaults() -> None:
    env = service_env("api", USER_ENV)
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RIMAS_LLM_MODEL"):
        assert env.get(var) == "", f"{var} must default to empty (offline policies)"
        assert service_env("api", {**USER_ENV, var: "given"})[var] == "given", f"{var} must pass through"


# ---------------------------------------------------------------- compose: images and volumes


def test_postgres_image_and_data_volume_agree() -> None:
    repo, tag = image_tag("postgres")
    assert repo == "postgres"
    major = int(re.match(r"\d+", tag).group())  # type: ignore[union-attr]
    assert major >= 16
    # postgres:18+ stores data under /var/lib/postgresql/<major>/docker and refuses a mount at .../data.
    expected = "/var/lib/postgresql" if major >= 18 else "/var/lib/postgresql/data"
    assert expected in volume_targets("postgres"), f"postgres:{tag} data must be a volume at {expected}"


def test_qdrant_image_is_pinned_to_a_release_the_client_accepts() -> None:
    repo, tag = image_tag("qdrant")
    assert repo == "qdrant/qdrant"
    match = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)", tag)
    assert match, f"qdrant tag {tag!r} must be a pinned vMAJOR.MINOR.PATCH release"
    client = importlib.metadata.version("qdrant-client").split(".")
    # qdrant-client warns (and may misbehave) when server and client minors differ by more than one.
    assert match.group(1) == client[0] == "1"
    assert abs(int(match.group(2)) - int(client[1])) <= 1, f"server {tag} vs qdrant-client {client}"
    assert "/qdrant/storage" in volume_targets("qdrant")


def test_named_volumes_are_declared() -> None:
    data = load_compose()
    declared = set(data.get("volumes") or {})
    used = {
        (name, source)
        for name in data["services"]
        for source in volume_targets(name).values()
        if source and not source.startswith((".", "/", "~"))
    }
    assert {name for name, _ in used} == {"postgres", "qdrant", "api", "worker"}, "each stateful service keeps a volume"
    undeclared = sorted(f"{name}: {source}" for name, source in used if source not in declared)
    assert not undeclared, f"undeclared named volumes: {undeclared}"


def test_api_models_dir_is_a_volume() -> None:
    models_dir = service_env("api", USER_ENV)["RIMAS_MODELS_DIR"]
    assert models_dir in volume_targets("api"), "trained models would be lost when the container is recreated"


def test_api_is_built_from_this_dockerfile() -> None:
    build = service("api").get("build")
    context = build if isinstance(build, str) else (build or {}).get("context")
    dockerfile = "Dockerfile" if isinstance(build, str) else (build or {}).get("dockerfile", "Dockerfile")
    assert (REPO / str(context) / str(dockerfile)).resolve() == DOCKERFILE_PATH


# ---------------------------------------------------------------- Dockerfile


def test_dockerfile_runtime_image_has_libgomp_and_runs_as_non_root() -> None:
    stage = runtime_stage()
    assert stage[0][1].split()[0] == "python:3.11-slim"
    runs = " ".join(args for kw, args in stage if kw == "RUN")
    assert re.search(r"apt-get install\b[^&;]*\blibgomp1\b", runs), "LightGBM needs libgomp1 at run time"
    users = [args.split(":")[0] for kw, args in stage if kw == "USER"]
    assert users, "the runtime stage must switch to a non-root USER"
    assert users[-1] not in ("root", "0")
    keywords = [kw for kw, _ in stage]
    assert keywords.index("CMD") > max(i for i, kw in enumerate(keywords) if kw == "USER")


def test_dockerfile_cmd_migrates_seeds_then_serves_on_all_interfaces() -> None:
    stage = runtime_stage()
    cmds = [args for kw, args in stage if kw == "CMD"]
    assert cmds, "Dockerfile has no CMD"
    command = " ".join(exec_form(cmds[-1]))
    positions = [command.find(step) for step in ("rimas migrate", "rimas seed --if-empty", "rimas serve")]
    assert -1 not in positions and positions == sorted(positions), command
    serve = command[positions[2] :]
    assert "--host 0.0.0.0" in serve, "inside a container the API must bind all interfaces"
    assert f"--port {API_PORT}" in serve
    assert "&&" in command, "a failed migration must stop the server from starting"
    exposed = [p.split("/")[0] for kw, args in stage if kw == "EXPOSE" for p in args.split()]
    assert str(API_PORT) in exposed


def test_dockerfile_healthcheck_uses_python_against_ok() -> None:
    checks = [args for kw, args in runtime_stage() if kw == "HEALTHCHECK"]
    assert checks, "Dockerfile has no HEALTHCHECK"
    _, _, command = checks[-1].partition("CMD")
    words = exec_form(command.strip())
    assert words[0] == "python"
    assert f"http://127.0.0.1:{API_PORT}/ok" in " ".join(words)


def test_dockerfile_copies_every_package_and_nothing_missing_or_ignored() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in include}
    sources: set[str] = set()
    for kw, args in dockerfile_instructions():
        if kw != "COPY" or "--from=" in args:
            continue
        words = [w for w in exec_form(args) if not w.startswith("--")]
        sources.update(src.rstrip("/").removeprefix("./") for src in words[:-1])
    assert packages, "pyproject lists no package to include"
    assert packages <= sources, f"packages not copied into the image: {sorted(packages - sources)}"
    readme = pyproject["project"]["readme"]
    assert isinstance(readme, str) and readme in sources, "pyproject names a readme; the build fails without it"
    for src in sources:
        assert (REPO / src).exists(), f"COPY source {src!r} does not exist"
        assert not dockerignored(src), f"COPY source {src!r} is excluded by .dockerignore"
    for package in packages:  # a pattern like `pkg/**` would leave the folder but drop its modules
        assert not dockerignored(f"{package}/__init__.py"), f"{package}/ reaches the build without its modules"


def test_dockerignore_matching_follows_docker_rules() -> None:
    """The matcher the image checks rely on: patterns, `**/`, and folders excluding their contents."""
    assert dockerignored("tests/test_compose.py")
    assert dockerignored("server/__pycache__/app.cpython-311.pyc")
    assert dockerignored("ml/models/__pycache__")
    assert dockerignored(".env.local")
    assert dockerignored("rimas.egg-info/PKG-INFO")
    assert not dockerignored("server/app.py")
    assert not dockerignored("README.md")
    assert not dockerignored("graphs/__init__.py")


def test_every_source_folder_is_a_package_so_the_wheel_carries_it() -> None:
    """The image installs a wheel built with `packages.find`, which skips folders without __init__.py."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    missing = []
    for top in (pattern.rstrip("*").rstrip(".") for pattern in include):
        assert (REPO / top / "__init__.py").is_file(), f"{top}/ is listed in pyproject but is not a package"
        for folder in [REPO / top, *(p for p in (REPO / top).rglob("*") if p.is_dir())]:
            if "__pycache__" in folder.parts:
                continue
            if any(folder.glob("*.py")) and not (folder / "__init__.py").exists():
                missing.append(str(folder.relative_to(REPO)))
    assert not missing, f"Python folders without __init__.py are left out of the image: {missing}"


def test_dockerignore_keeps_local_state_and_secrets_out() -> None:
    patterns = set(dockerignore_patterns())
    for required in (".git", ".venv", ".rimas", ".env"):
        assert required in patterns, f".dockerignore must exclude {required}"


# ---------------------------------------------------------------- settings wiring


def _settings_class() -> Any:
    module = importlib.import_module("server.settings")
    cls = getattr(module, "Settings", None)
    assert cls is not None, "server.settings has no Settings class"
    return cls


def _settings_env_names(cls: Any) -> set[str]:
    """Environment variable names a pydantic-settings class reads (aliases replace the prefix)."""
    from pydantic import AliasChoices, AliasPath

    config = cls.model_config
    prefix = config.get("env_prefix", "")
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            for choice in alias.choices:
                if isinstance(choice, str):
                    names.add(choice)
                elif isinstance(choice, AliasPath) and isinstance(choice.path[0], str):
                    names.add(choice.path[0])
        elif isinstance(alias, AliasPath) and isinstance(alias.path[0], str):
            names.add(alias.path[0])
        elif field.alias:
            names.add(field.alias)
        else:
            names.add(prefix + field_name)
    if not config.get("case_sensitive", False):
        names = {n.upper() for n in names}
    return names


def test_every_env_var_given_to_the_api_is_a_setting() -> None:
    cls = _settings_class()
    known = _settings_env_names(cls)
    fold = (lambda s: s) if cls.model_config.get("case_sensitive", False) else str.upper
    given = set(raw_service_env("api"))
    given |= {
        name for kw, args in runtime_stage() if kw == "ENV" for name in re.findall(r"\b(RIMAS_[A-Z0-9_]+)=", args)
    }
    assert {"DATABASE_URL", "QDRANT_URL", "RIMAS_API_KEYS", "RIMAS_LANGGRAPH_CONFIG"} <= given, given
    unknown = sorted(name for name in given if fold(name) not in known)
    assert not unknown, f"the api is given variables its Settings ignore: {unknown}; known: {sorted(known)}"


def test_settings_accept_the_compose_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """What compose passes (including the empty OpenAI defaults) must validate, or the container dies."""
    cls = _settings_class()
    monkeypatch.chdir(tmp_path)  # keep a developer's .env out of it
    for name in _settings_env_names(cls):
        monkeypatch.delenv(name, raising=False)
    for name, value in service_env("api", USER_ENV).items():
        monkeypatch.setenv(name, value)
    settings = cls()
    # Compose always sets the OpenAI variables, empty when the user gave none: empty must mean "unset",
    # i.e. the deterministic policies and the default model name, not an LLM with a blank key.
    assert settings.llm_mode == "deterministic", "empty OPENAI_API_KEY from compose switched the LLM on"
    assert settings.llm_model == cls.model_fields["llm_model"].default, "empty RIMAS_LLM_MODEL replaced the default"
    assert settings.openai_base_url is None, settings.openai_base_url
    assert settings.database_url == service_env("api", USER_ENV)["DATABASE_URL"]


def test_image_path_follows_copy_and_workdir() -> None:
    """The COPY model the image checks rely on, on files whose place in the image is known."""
    assert image_path("langgraph.json") == "/home/rimas/langgraph.json"
    assert image_path("graphs/__init__.py") == "/home/rimas/graphs/__init__.py"
    assert image_path("tests/test_compose.py") is None, "tests are not copied into the runtime stage"
    assert image_path("server/app.py") is None, "the runtime stage installs the wheel, it copies no source"


def test_image_carries_the_assistants_config_and_every_graph_file() -> None:
    """The server reads RIMAS_LANGGRAPH_CONFIG and resolves each graph path against that file's folder, so the
    image must hold the file there and every graph file at the same place relative to it; module targets
    must come from a package the wheel installs."""
    config_in_image = runtime_env().get("RIMAS_LANGGRAPH_CONFIG")
    assert config_in_image, "the runtime stage must point RIMAS_LANGGRAPH_CONFIG at the shipped langgraph.json"
    assert image_path("langgraph.json") == config_in_image
    home = posixpath.dirname(config_in_image)
    assert image_path("graphs/__init__.py") == posixpath.join(home, "graphs/__init__.py"), "graphs/ ships beside it"

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {p.rstrip("*").rstrip(".") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    graphs = json.loads((REPO / "langgraph.json").read_text(encoding="utf-8"))["graphs"]
    for assistant_id, value in graphs.items():
        target = (value["path"] if isinstance(value, dict) else value).rpartition(":")[0]
        if target.endswith(".py") or "/" in target:
            in_context = posixpath.normpath(target)
            assert (REPO / in_context).is_file(), f"{assistant_id}: {target} does not exist"
            assert image_path(in_context) == posixpath.normpath(posixpath.join(home, target)), (
                f"{assistant_id}: {target} is not in the image next to langgraph.json (COPY or .dockerignore)"
            )
        else:
            assert target.split(".")[0] in packages, f"{assistant_id}: {target} is not in an installed package"
