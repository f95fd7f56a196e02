"""The shell commands of README.md, docs/quickstart.md and docs/personalizer-migration.md, run as a new user runs them.

The README's first command runs in a fresh ``git clone`` of this repository (its
committed HEAD: commit a change to the code before running this): a virtual
environment, ``pip install -e .`` and ``decide serve``, which keeps running.
Every other command of the three documents then runs in that clone, against that
server, in the documents' order. Only these differ from a person at a terminal:

- the server listens on a free port (``DECIDE_PORT``), which replaces the
  documents' addresses (``http://127.0.0.1:8080``, ``http://decide.internal:8080``),
  and ``decide demo`` gets it as ``DECIDE_URL``;
- ``<eventId>`` becomes the eventId of the last rank answered;
- curl reads a ``.curlrc`` that makes an HTTP error status fail the command.

A command that cannot run here is in SKIPPED, with the reason, and is reported
as a skipped test; one that runs on a scratch database (migrated first) instead
of the served one is in ELSEWHERE. A new command in the documents runs with no change here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from decide.client import Client
from tests.e2e.conftest import free_port, wait_ready

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "docs/quickstart.md", "docs/personalizer-migration.md")
PROGRAMS = ("python3 ", "bash ", "curl ", ".venv/bin/", "export ")
ADDRESSES = ("http://127.0.0.1:8080", "http://decide.internal:8080")
INSTALL_AND_SERVE = "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/decide serve"

SKIPPED = {
    ("README.md", "bash scripts/test.sh"):
        "the whole suite, as root (it installs PostgreSQL, Chromium and a Kafka broker): .ci/run runs it",
    ("docs/quickstart.md", INSTALL_AND_SERVE): "the README's first command, which this test runs first",
    ("docs/quickstart.md", "export DECIDE_DATABASE_URL=postgresql://decide:secret@db.example:5432/decide"):
        "needs the PostgreSQL server db.example (tests/integration migrates and serves on PostgreSQL)",
    ("docs/quickstart.md", ".venv/bin/decide migrate"): "the PostgreSQL example: needs the server db.example",
    ("docs/quickstart.md", ".venv/bin/decide serve --host 0.0.0.0"): "the PostgreSQL example: needs the server db.example",
    ("docs/quickstart.md", ".venv/bin/decide serve --no-learner --host 0.0.0.0"):
        "a second API host beside the worker host: needs a second machine",
    ("docs/quickstart.md", ".venv/bin/decide worker --metrics-port 9100"):
        "the worker host beside the API hosts: needs a second machine",
}
ELSEWHERE = {
    ("docs/quickstart.md", ".venv/bin/decide loops create news --set policy=linucb --set rewardWaitTime=60"):
        "the CLI alternative to the API request that already created `news` on the served database",
}


@dataclass(frozen=True)
class Command:
    document: str
    text: str
    shown_output: str | None = None
    """What the document shows the command printing, where it shows it (after a ``$`` prompt)."""

    @property
    def key(self) -> tuple[str, str]:
        """The document and the command without its trailing comment and repeated spaces."""
        return self.document, " ".join(re.sub(r"\s+#[^'\"]*$", "", self.text).split())


def shell_blocks(markdown: str) -> Iterator[list[str]]:
    """The lines of each fenced block that is not marked as another language."""
    for match in re.finditer(r"^```(\w*)\n(.*?)^```", markdown, re.MULTILINE | re.DOTALL):
        if match.group(1) in ("", "sh", "bash", "console"):
            yield match.group(2).splitlines()


def complete(text: str) -> bool:
    """Whether ``text`` is a whole command: no line continuation, no quote left open."""
    if text.endswith("\\"):
        return False
    try:
        shlex.split(text, comments=True)
    except ValueError:
        return False
    return True


def commands(document: str) -> list[Command]:
    """The commands of ``document``, in order; a block of what a command prints is no command."""
    found: list[Command] = []
    for lines in shell_blocks((ROOT / document).read_text(encoding="utf-8")):
        if lines and lines[0].startswith("$ "):
            found.extend(prompted(document, lines))
        elif lines and lines[0].startswith(PROGRAMS):
            text = ""
            for line in lines:
                text = f"{text}\n{line}" if text else line
                if complete(text.rstrip()):
                    found.append(Command(document, text.rstrip()))
                    text = ""
            assert not text, f"{document}: a command does not end: {text}"
    return found


def prompted(document: str, lines: list[str]) -> Iterator[Command]:
    """Commands after a ``$`` prompt, each with the lines up to the next prompt as what it prints."""
    text, output = "", []
    for line in lines:
        if line.startswith("$ "):
            if text:
                yield Command(document, text, "\n".join(output).strip())
            text, output = line.removeprefix("$ "), []
        elif text and not complete(text):
            text = f"{text}\n{line}"
        elif line.strip():
            output.append(line)
    if text:
        yield Command(document, text, "\n".join(output).strip())


DOCUMENTED = [command for document in DOCUMENTS for command in commands(document)]


@pytest.mark.parametrize("key", list(SKIPPED), ids=lambda key: key[1][:60])
def test_a_documented_command_that_cannot_run_here(key: tuple[str, str]) -> None:
    assert key in {command.key for command in DOCUMENTED}, f"{key[0]} no longer has the skipped command {key[1]!r}"
    pytest.skip(SKIPPED[key])


@pytest.mark.timeout(900)
def test_the_documented_commands_work_on_a_fresh_clone(tmp_path: Path) -> None:
    first, *rest = DOCUMENTED
    assert first.key == ("README.md", INSTALL_AND_SERVE), "README.md must open with the install-and-serve command"
    assert set(ELSEWHERE) <= {command.key for command in DOCUMENTED}, "an ELSEWHERE command is gone"
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: nothing to clone")
    clone = tmp_path / "decide"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    environment = user_environment(tmp_path) | {"DECIDE_URL": url}
    log = tmp_path / "serve.log"
    with log.open("w") as output:
        server = subprocess.Popen(
            ["bash", "-c", first.text], cwd=clone, env=environment | {"DECIDE_PORT": str(port)},
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    client = Client(url)
    try:
        try:
            wait_ready(client, server, timeout=600)
        except (RuntimeError, TimeoutError) as error:
            pytest.fail(f"README.md's first command: {error}\n{log.read_text()[-3000:]}")
        printed = log.read_text()
        assert f"decide listens on {url}" in printed, printed[-3000:]
        (suggested,) = re.findall(r"^try:\s+(curl .*)$", printed, re.MULTILINE)
        event_id = run(Command("decide serve's suggestion", suggested), clone, environment, url, None)
        for command in rest:
            if command.key in SKIPPED:
                continue
            if command.key in ELSEWHERE:
                scratch = environment | {"DECIDE_DATABASE_URL": f"sqlite:///{tmp_path / 'scratch.db'}"}
                subprocess.run([".venv/bin/decide", "migrate"], cwd=clone, env=scratch, check=True, capture_output=True)
                run(command, clone, scratch, url, None)
            else:
                event_id = run(command, clone, environment, url, event_id)
    finally:
        client.close()
        stop_group(server)


def user_environment(home: Path) -> dict[str, str]:
    """This process's environment without decide's settings or a virtual environment, and a strict curl."""
    (home / ".curlrc").write_text("fail-with-body\nshow-error\nmax-time = 120\n")
    kept = {
        name: value for name, value in os.environ.items()
        if not name.startswith("DECIDE_") and name not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")
    }
    virtual_env = os.environ.get("VIRTUAL_ENV")
    if virtual_env:
        kept["PATH"] = os.pathsep.join(p for p in kept.get("PATH", "").split(os.pathsep) if not p.startswith(virtual_env))
    return kept | {"CURL_HOME": str(home)}


def run(command: Command, clone: Path, environment: dict[str, str], url: str, event_id: str | None) -> str | None:
    """Run one documented command; the eventId it answered with, else ``event_id``."""
    text = command.text
    for address in ADDRESSES:
        text = text.replace(address, url)
    if "<eventId>" in text:
        assert event_id, f"{command.document}: {command.text!r} needs an eventId, and no rank answered before it"
        text = text.replace("<eventId>", event_id)
    done = subprocess.run(["bash", "-c", text], cwd=clone, env=environment, capture_output=True, text=True, timeout=600)
    where = f"{command.document}: {command.text}\nexit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert done.returncode == 0, where
    assert "does not provide the extra" not in done.stderr, where
    answer = json_of(done.stdout)
    if command.shown_output is not None:
        shown = json_of(command.shown_output)
        assert isinstance(answer, dict) and isinstance(shown, dict), where
        assert answer.keys() == shown.keys(), f"{where}\nthe document shows the fields {sorted(shown)}"
    if isinstance(answer, dict) and isinstance(answer.get("eventId"), str):
        return answer["eventId"]
    return event_id


def json_of(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None


def stop_group(process: subprocess.Popen) -> None:
    """SIGTERM the command's whole process group (bash, decide serve, gunicorn, the learner), then SIGKILL."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
