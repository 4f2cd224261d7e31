"""The cpu profile of deploy/compose.yaml, exercised: each service's command runs as a real local
process, the environment substituted as compose substitutes it, the compose network mapped onto
loopback (a service's name and 0.0.0.0 become 127.0.0.1, each container port a free local port, each
volume a temporary folder), and compose's restart policy played by a supervisor loop. Emotion events
must reach a subscriber and the recording, every healthcheck must pass, and a killed server must
come back and its events resume. So compose.yaml cannot rot without this failing. (The dashboard
service runs only where its extra is installed.)"""
from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bodytalk.client import Subscription
from bodytalk.stream import keys
from bodytalk.stream.session_file import SessionReader
from tests.deploy.manifests import compose, interpolate, read_env_file
from tests.helpers import free_port, stop
from tests.model.serving.helpers import tiny_llm_checkpoint, wait_for

_ADDR = re.compile(r"(tcp|http)://([A-Za-z0-9_.\-]+):(\d+)")


KEYS = "/etc/bodytalk/keys"   # where compose mounts the CurveZMQ keys folder (BODYTALK_KEYS)

class LocalCompose:
    """The services of one profile as supervised local processes (see the module docstring)."""

    def __init__(self, profile: str, env: dict[str, str], root: Path, leave_out: set[str] = frozenset()) -> None:
        spec = compose()
        self.services = {n: s for n, s in spec["services"].items()
                         if profile in s.get("profiles", []) and n not in leave_out}
        self.env, self.root = env, root
        text = str([[s.get("command"), s.get("healthcheck")] for s in self.services.values()])
        self.hosts = set(self.services) | {"0.0.0.0", "127.0.0.1"}
        self.ports = {int(p): free_port() for _, _, p in _ADDR.findall(interpolate(text, env))}
        self.volumes: dict[str, Path] = {}   # container path -> local folder
        for name, service in self.services.items():
            for mount in interpolate(service.get("volumes", []), env):
                source, target = mount.split(":")[:2]
                self.volumes[target] = root / "volumes" / Path(source).name
                self.volumes[target].mkdir(parents=True, exist_ok=True)
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.restarts = {name: 0 for name in self.services}
        self._stopping = threading.Event()
        self._supervisor = threading.Thread(target=self._supervise, daemon=True)

    def local(self, value):
        """A compose value as it reads on this machine."""
        text = interpolate(value, self.env) if isinstance(value, str) else value
        if isinstance(text, list):
            return [self.local(v) for v in text]
        text = _ADDR.sub(lambda m: f"{m[1]}://127.0.0.1:{self.ports[int(m[3])]}" if m[2] in self.hosts else m[0], text)
        for target, folder in self.volumes.items():
            text = text.replace(target, str(folder))
        return text

    def addr(self, container_port: int) -> str:
        return f"tcp://127.0.0.1:{self.ports[container_port]}"

    def _environ(self, service: dict) -> dict[str, str]:
        bin_dir = str(Path(sys.executable).parent)   # where pip put the `bodytalk` command
        env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"], "PYTHONUNBUFFERED": "1"}
        env.update({k: self.local(str(v)) for k, v in interpolate(service.get("environment", {}), self.env).items()})
        return env

    def command(self, service: dict) -> list[str]:
        argv = self.local(service["command"])
        for i, arg in enumerate(argv[:-1]):   # an HTTP server's --port N: mapped like its URLs
            if arg == "--port" and int(argv[i + 1]) in self.ports:
                argv[i + 1] = str(self.ports[int(argv[i + 1])])
        return argv

    def start(self, name: str) -> None:
        service = self.services[name]
        self.logs[name] = self.root / f"{name}.log"
        with open(self.logs[name], "a") as log:
            self.procs[name] = subprocess.Popen(self.command(service), env=self._environ(service),
                                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def up(self) -> None:
        for name in self.services:
            self.start(name)
        self._supervisor.start()

    def _supervise(self) -> None:
        """restart: unless-stopped / always: a process that ended is started again."""
        while not self._stopping.wait(0.2):
            for name, proc in list(self.procs.items()):
                if proc.poll() is not None and self.services[name]["restart"] in ("always", "unless-stopped"):
                    self.restarts[name] += 1
                    self.start(name)

    def kill(self, name: str) -> None:
        """SIGKILL, as a crash leaves it."""
        os.killpg(self.procs[name].pid, signal.SIGKILL)

    def healthcheck(self, name: str) -> subprocess.CompletedProcess:
        test = self.services[name]["healthcheck"]["test"]
        assert test[0] == "CMD"
        return subprocess.run(self.local(test[1:]), env=self._environ(self.services[name]),
                              capture_output=True, text=True, timeout=60)

    def log(self, name: str) -> str:
        return self.logs[name].read_text()[-3000:] if name in self.logs else ""

    def down(self) -> None:
        self._stopping.set()
        self._supervisor.join(timeout=5)
        for proc in self.procs.values():   # SIGTERM first: the recorder finishes its file
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            stop(proc, timeout=20)


@pytest.fixture
def topology(tmp_path, tiny_model_dir):
    env = read_env_file()
    # What a user would put in deploy/.env: a small checkpoint, and one torch thread for the server.
    env |= {"BODYTALK_MODEL": str(tiny_llm_checkpoint(tmp_path / "ckpt", tiny_model_dir)),
            "BODYTALK_SERVER_THREADS": "1"}
    # The dashboard needs the `dashboard` extra (websockets), which CI's `.[ml,dev]` leaves out.
    stack = LocalCompose("cpu", env, tmp_path, leave_out=set() if importlib.util.find_spec("websockets") else {"dashboard"})
    keys.init(stack.volumes[KEYS])   # what a user runs once: `bodytalk keys init deploy/keys`
    stack.up()
    try:
        yield stack
    finally:
        stack.down()


def _events(client: Subscription, want: int, timeout: float, why) -> list:
    got = []
    wait_for(lambda: (ev := client.poll(0.2)) is not None and ev.status == "ok" and got.append(ev) is None
             and len(got) >= want, timeout, why)
    return got


def test_cpu_profile_delivers_events_recordings_and_healthy_checks_and_survives_a_server_crash(topology):
    logs = lambda: "\n".join(f"--- {n}\n{topology.log(n)}" for n in topology.services)  # noqa: E731
    with Subscription(topology.addr(5556), keys=str(topology.volumes[KEYS])) as client:
        first = _events(client, 6, 240, lambda: "emotion events on the published port\n" + logs())
        assert {ev.sensor for ev in first} == {"synthetic"} and len({ev.body for ev in first}) == 2
        for name in topology.services:   # every healthcheck of the profile, as Docker would run it
            check = wait_for(lambda n=name: (c := topology.healthcheck(n)).returncode == 0 and c, 60,
                             lambda n=name: f"the {n} healthcheck\n{topology.healthcheck(n)}\n{logs()}")
            assert check.returncode == 0
        # A crash: the restart policy brings the server back, and events resume.
        topology.kill("server")
        wait_for(lambda: topology.restarts["server"] >= 1, 30, "the supervisor to restart the server")
        while client.poll(0.5) is not None:   # what the old server sent before it died
            pass
        after = _events(client, 3, 240, lambda: "events after the server's restart\n" + logs())
        assert all(ev.t_end > first[-1].t_end for ev in after)
        assert topology.procs["server"].poll() is None and topology.healthcheck("server").returncode == 0
    assert all(n == 0 for name, n in topology.restarts.items() if name != "server"), topology.restarts
    topology.down()
    sessions = sorted(topology.volumes["/sessions"].glob("session-*.mcap"))
    assert len(sessions) == 1, sessions
    topics = {rec.topic.split(".")[0] + "." + rec.topic.split(".")[1] for rec in SessionReader(sessions[0]).records()}
    assert {"skeleton.window", "emotion.synthetic", "status.server", "status.broker"} <= topics, topics
