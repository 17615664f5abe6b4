"""A real local Ray cluster for the tests: ``ray start --head --block`` in a process of its own.

Small and private: 2 CPUs, a 200 MB object store, no dashboard, every port on the
loopback interface and chosen free (so it never meets another cluster on the
machine), its session files in a directory of its own. Stopping it stops only
its own process group — never ``ray stop``, which would stop every cluster here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Keep Ray on this machine, quiet, and free of the login token newer versions ask for.
ENV = {
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node address: the loopback interface
    "RAY_AUTH_MODE": "disabled",
    "RAY_USAGE_STATS_ENABLED": "0",
}
OBJECT_STORE_BYTES = 200 * 1024 * 1024
START_TIMEOUT = 120.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class Cluster:
    address: str  # host:port of its GCS, what RAY_ADDRESS / address= take
    process: subprocess.Popen[bytes]
    log: Path
    # RAY_TMPDIR for a driver that should find this cluster without an address (Ray's files
    # live in its "ray" folder). Short: Ray's socket paths in there must fit in 107 bytes.
    sessions: str

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            shutil.rmtree(self.sessions, ignore_errors=True)

    def _stop(self) -> None:
        # `ray start --block` shuts its processes down on SIGTERM (it drains the node through
        # the GCS first, so the GCS must not get the signal at the same time); whatever is
        # left of its process group after that is killed.
        if self.process.poll() is None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=45)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # its own group: see start()
        if self.process.poll() is None:
            self.process.wait(timeout=30)


def _terminate_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the parent dies (no-op elsewhere)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_executable() -> str:
    return os.path.join(os.path.dirname(sys.executable), "ray")


def start(workdir: Path, num_cpus: int = 2) -> Cluster:
    """Start a head node (its log in ``workdir``); return once a driver can connect to it."""
    workdir.mkdir(parents=True, exist_ok=True)
    sessions = tempfile.mkdtemp(prefix="operonx-ray-")
    port = free_port()
    ports = {flag: free_port() for flag in (
        "--dashboard-agent-listen-port",
        "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port",
        "--node-manager-port", "--object-manager-port")}
    command = [ray_executable(), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
               f"--port={port}", f"--num-cpus={num_cpus}", "--num-gpus=0",
               f"--object-store-memory={OBJECT_STORE_BYTES}", "--include-dashboard=false",
               "--disable-usage-stats", f"--temp-dir={os.path.join(sessions, 'ray')}",
               *(f"{flag}={value}" for flag, value in ports.items())]
    log = workdir / "ray-start.log"
    with open(log, "wb") as out:
        # A session of its own, so stopping it (killpg) reaches every process it started;
        # and a SIGTERM from the kernel if this process dies without stopping it.
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, **ENV}, start_new_session=True,
                                   preexec_fn=_terminate_with_parent)
    cluster = Cluster(f"127.0.0.1:{port}", process, log, sessions)
    deadline = time.monotonic() + START_TIMEOUT
    while b"Ray runtime started" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            cluster.stop()
            raise RuntimeError(f"ray start failed:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)
    return cluster
