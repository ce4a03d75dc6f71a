"""Start and stop an embedded hierarchy of tier servers on loopback, one process per store.

Each server is ``python -m cqgov_tui serve …`` in its own process (a DuckDB
file can be owned by one process only), with its store named
``<tier>-<code>.duckdb`` in the data directory. All servers share one
secret file so the hierarchy can mint the peer tokens each lower server
uses with the tier above, and user tokens for the simulator and the console.

Children get their own session (a terminal's Ctrl-C reaches only the parent,
which stops them all) and, on Linux, a
parent-death signal so none outlive a parent that was killed outright.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx

from .. import ownership
from ..clock import Clock, SystemClock
from ..domain.entities import Role, Tier
from ..errors import CqgovError
from ..scope import CITY_CODE
from ..server.auth import TokenAuthority, load_secret

TOKEN_TTL = 7 * 86400.0


class HierarchyError(CqgovError):
    exit_code = 7


@dataclass
class Node:
    tier: str
    code: str
    name: str
    db: str
    port: int
    upstream: str | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)
    log_path: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def node(self) -> str:
        return ownership.Node(Tier(self.tier), self.code).name  # the name its server gives its store


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _parent_death_signal():
    """In the child, before exec: die with SIGTERM when the parent dies (Linux only)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def choose(registry, districts: list[str] | None = None, streets_per_district: int = 2) -> list[tuple[str, list[str]]]:
    """Districts and their streets for a demo: by default 南岸区 and 渝北区, two streets each."""
    chosen = districts or ["500108", "500112"]
    out = []
    for d in chosen:
        registry.get(d)
        kids = [j.code for j in registry.children(d)][:streets_per_district]
        out.append((d, kids))
    return out


class Hierarchy:
    def __init__(self, data_dir: str, layout: list[tuple[str, list[str]]], registry, *, clock: Clock | None = None,
                 python: str | None = None, sweep_every: float = 2.0, log_level: str = "info"):
        self.data_dir = os.path.abspath(data_dir)
        os.makedirs(self.data_dir, exist_ok=True)
        self.clock = clock or SystemClock()
        self.python = python or sys.executable
        self.sweep_every = sweep_every
        self.log_level = log_level
        self.secret_file = os.path.join(self.data_dir, "hierarchy.secret")
        self.authority = TokenAuthority(load_secret(self.secret_file))
        self.nodes: list[Node] = []
        city = Node("city", CITY_CODE, registry.get(CITY_CODE).name, self._db("city", CITY_CODE), free_port())
        self.nodes.append(city)
        for d, streets in layout:
            dn = Node("district", d, registry.get(d).name, self._db("district", d), free_port(), upstream=city.url)
            self.nodes.append(dn)
            for s in streets:
                self.nodes.append(Node("street", s, registry.get(s).name, self._db("street", s), free_port(),
                                       upstream=dn.url))

    def _db(self, tier: str, code: str) -> str:
        return os.path.join(self.data_dir, f"{tier}-{code}.duckdb")

    @property
    def city(self) -> Node:
        return self.nodes[0]

    def of_tier(self, tier: str) -> list[Node]:
        return [n for n in self.nodes if n.tier == tier]

    def token(self, node: Node, role: str = Role.ADMIN.value, user: str | None = None, peer: bool = False) -> str:
        """A token scoped to ``node``'s jurisdiction (the city: all of Chongqing)."""
        return self.authority.issue(user=user or f"demo-{node.node}", role=role, tier=node.tier, scope=node.code,
                                    now=self.clock.now(), ttl=TOKEN_TTL, peer=peer)

    def _upstream_token(self, node: Node) -> str:
        return self.token(node, Role.ADMIN.value, user=f"node:{node.node}", peer=True)

    # ---- processes

    def _spawn(self, node: Node) -> None:
        node.log_path = os.path.join(self.data_dir, f"{node.node}.log")
        cmd = [self.python, "-m", "cqgov_tui", "serve", "--tier", node.tier, "--code", node.code, "--db", node.db,
               "--port", str(node.port), "--host", "127.0.0.1", "--secret-file", self.secret_file,
               "--sweep-every", str(self.sweep_every), "--log-level", self.log_level]
        env = dict(os.environ)
        if node.upstream:
            cmd += ["--upstream", node.upstream]
            env["CQGOV_UPSTREAM_TOKEN"] = self._upstream_token(node)
        log = open(node.log_path, "ab")
        try:
            node.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                         start_new_session=True,
                                         preexec_fn=_parent_death_signal if sys.platform.startswith("linux") else None)
        finally:
            log.close()

    def _wait_healthy(self, nodes: list[Node], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        with httpx.Client(timeout=1.0) as http:
            while pending:
                for node in list(pending):
                    if node.proc is not None and node.proc.poll() is not None:
                        raise HierarchyError(f"{node.node} exited with {node.proc.returncode} during start-up: "
                                             f"{_last_line(node.log_path)}")
                    with contextlib.suppress(httpx.HTTPError):
                        if http.get(f"{node.url}/v1/health").status_code == 200:
                            pending.remove(node)
                if pending and time.monotonic() > deadline:
                    raise HierarchyError(f"{', '.join(n.node for n in pending)} not healthy after {timeout:.0f}s")
                if pending:
                    time.sleep(0.1)

    def start(self, timeout: float = 60.0, progress=None) -> None:
        """City first, then the districts, then the streets — each tier waits for the one above to answer.
        ``progress`` (a callable taking one line) hears as each tier comes up: a start takes 15–30 s."""
        began = time.monotonic()
        up = 0
        try:
            for tier in (Tier.CITY.value, Tier.DISTRICT.value, Tier.STREET.value):
                batch = self.of_tier(tier)
                for node in batch:
                    self._spawn(node)
                self._wait_healthy(batch, timeout)
                up += len(batch)
                if progress is not None:
                    progress(f"  {tier} servers up ({up}/{len(self.nodes)}, {time.monotonic() - began:.0f}s): "
                             + ", ".join(n.url for n in batch))
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 4.0) -> list[str]:
        """SIGTERM every server at once (each drains and closes its store); SIGKILL any still up at the deadline.

        All at once, not tier by tier, so the whole hierarchy is down within
        ``timeout`` however many servers there are.
        """
        deadline = time.monotonic() + timeout
        running = [n for n in self.nodes if n.proc is not None and n.proc.poll() is None]
        for n in running:
            with contextlib.suppress(ProcessLookupError):
                n.proc.send_signal(signal.SIGTERM)
        killed = []
        for n in running:
            try:
                n.proc.wait(max(0.05, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    n.proc.kill()
                n.proc.wait(2)
                killed.append(n.node)
        return killed

    def alive(self) -> list[str]:
        return [n.node for n in self.nodes if n.proc is not None and n.proc.poll() is None]

    def pids(self) -> list[int]:
        return [n.proc.pid for n in self.nodes if n.proc is not None]


def _last_line(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            lines = [l for l in fh.read().decode(errors="replace").splitlines() if l.strip()]
        return lines[-1][:300] if lines else "(no output)"
    except OSError:
        return "(no log)"
