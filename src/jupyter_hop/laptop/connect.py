"""`jupyter hop connect HOST [PROFILE]` (portable): one master (or, without ControlMaster, one ssh per step: see
direct.py), the remote jupyter-hop's JSON object, a verified tunnel, the browser, and a supervisor that keeps the
tunnel up until Ctrl-C.

The job (or unit) is the remote's: Ctrl-C closes what connect opened (forwards, masters, the control dir) and
leaves the server running; `--stop` stops it with the remote's own `stop`.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import webbrowser
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

from jupyter_hop.errors import HopError
from jupyter_hop.laptop import argv as ssh_argv
from jupyter_hop.laptop import direct, follow, objects, ports, probe
from jupyter_hop.laptop.link import Link
from jupyter_hop.laptop.remote import LOGIN_SHELL, NOT_FOUND
from jupyter_hop.laptop.supervise import Supervisor, Tunnel

Mode = Literal["slurm", "systemd", "run"]
PROBE_TIMEOUT = 30.0  # from an open forward to the first HTTP answer: the server already answered remotely
LIST_TIMEOUT = 120.0
HAS_SBATCH = f"{LOGIN_SHELL} 'command -v sbatch >/dev/null'"  # the login shell's PATH, where modules put sbatch
INTERRUPTED = 130


@dataclass
class Request:
    host: str
    profile: str = "default"
    mode: Mode | None = None  # None: slurm when the host has sbatch
    new: bool = False
    overrides: list[str] = field(default_factory=list)  # submit's one-off options, as words
    port: int | None = None  # the laptop port wanted (else the profile's)
    browser: bool = True
    warn_before: float = 600.0
    stop: bool = False


class NoReattach(Exception):
    """The remote's `slurm submit` refused --reattach (a release before it): nothing was submitted."""


class Interrupted(HopError):
    """Ctrl-C: what was left running and how to come back is already printed."""

    def __init__(self) -> None:
        super().__init__("interrupted", exit_code=INTERRUPTED)


def _plain(stop: Sequence[str]) -> list[str]:
    """A remote argv without its leading jupyter-hop invocation (`jupyter hop`, `jupyter-hop` or a path): the
    words that go after the host's remote_command."""
    for i, word in enumerate(stop):
        if word in ("stop", "slurm", "systemd", "instructions", "list", "run"):
            return list(stop[i:])
    raise HopError(f"cannot read the remote command {shlex.join(stop)!r}")


def link(host: str, err: IO[str]) -> Link:
    """One master where ssh has ControlMaster; else (Windows) one ssh per step, and the POSIX-only modules of the
    master are never imported."""
    if direct.wanted():
        return direct.DirectSession(host, err=err)
    from jupyter_hop.laptop.session import SshSession

    return SshSession(host, err=err)


class Connect:
    def __init__(self, request: Request, *, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
        self.req = request
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.session = link(request.host, self.err)
        self.job_id = ""
        self.server: subprocess.Popen[str] | None = None  # --run: the remote launcher, ours until connect ends
        self.stop_words: list[str] = []
        self.ready = False  # the server answered remotely: after a failure here it is left running, and said so
        self.connected = False  # its URL was printed

    def say(self, text: str, *, to_err: bool = False) -> None:
        stream = self.err if to_err else self.out
        stream.write(text + "\n")
        stream.flush()

    # ---- the remote side

    def hop(self, words: Sequence[str], *, timeout: float, what: str) -> subprocess.CompletedProcess[str]:
        result = self.session.jupyter_hop(words, timeout=timeout, what=what)
        if result.returncode != 0:
            raise self._failed(result.returncode, result.stderr, what)
        return result

    def _failed(self, code: int, stderr: str, what: str) -> HopError:
        if code == NOT_FOUND:
            return self.session.not_found(stderr)
        if objects.too_old(stderr):
            return HopError(f"the jupyter-hop on {self.req.host} is older than the --json protocol that connect "
                            "needs; upgrade it there (pip install -U jupyter-hop)", detail=stderr)
        lines = objects.failure_lines(stderr)
        said = lines[0].removeprefix("jupyter-hop: error: ") if lines else f"exit code {code}"
        return HopError(f"{what} on {self.req.host} failed: {said}", detail="\n".join(lines[1:]))

    def guessed_slurm(self) -> dict[str, Any]:
        """No mode given: the sbatch check and `slurm submit --reattach` run side by side over the master (a host
        without sbatch fails the submit, harmlessly); the check is waited for only when the submit failed. Without
        a master they run one after the other: two logins at once would ask on the terminal at the same time."""
        if not self.session.parallel:
            self._check_sbatch(self.session.run(HAS_SBATCH, timeout=60, what="looking for sbatch").returncode)
            return self.slurm_object()
        check = self.session.popen(HAS_SBATCH)
        try:
            return self.slurm_object()
        except Interrupted:
            raise
        except HopError:
            self._check_sbatch(check.wait(timeout=60))
            raise
        finally:
            if check.poll() is None:
                check.terminate()
            check.communicate()

    def _check_sbatch(self, code: int) -> None:
        if code not in (0, 255):  # 255: ssh's own failure, said by what ran over it
            raise HopError(f"{self.req.host} has no sbatch on its login shell's PATH: give --systemd (a user unit) "
                           "or --run (a server that lives as long as connect) for a workstation")

    def live_job(self) -> dict[str, Any] | None:
        listing = self.hop(["list", "--json"], timeout=LIST_TIMEOUT, what="jupyter-hop list")
        return objects.reattach_row(self.req.host, listing.stdout, self.req.profile)

    def follow(self, words: Sequence[str], what: str) -> dict[str, Any]:
        """Run a remote --json command that waits, showing its progress events as one live line."""
        process = self.session.popen(self.session.hop_line(words))
        try:
            done = follow.read(process, self.err, on_event=self._seen)
        except KeyboardInterrupt:
            process.terminate()
            process.wait()
            self.left_running(queued=True)
            raise Interrupted() from None
        if done.code == 255:
            said = done.kept[-1] if done.kept else "ssh said nothing"
            raise HopError(f"ssh to {self.req.host} failed ({what}): {said}")
        if done.code != 0:
            if objects.lacks_option(done.kept, "--reattach"):
                raise NoReattach()
            raise self._failed(done.code, "\n".join(done.kept), what)
        return objects.the_object(self.req.host, done.stdout)

    def _seen(self, found: dict[str, Any]) -> None:
        self.job_id = str(found.get("job_id") or self.job_id)
        if found.get("event") == "reattached":
            self.say(f"Reattaching to Slurm job {self.job_id} ({found.get('state')}) of profile "
                     f"{self.req.profile} on {self.req.host}.", to_err=True)

    def slurm_object(self) -> dict[str, Any]:
        """One remote call: `slurm submit --reattach` finds a live job of the profile or submits one. A remote
        older than --reattach is asked the old way: `list --json`, then `slurm instructions` or `slurm submit`."""
        words = ["slurm", "submit", self.req.profile, "--json", *self.req.overrides]
        if not self.req.new:
            try:
                return self.follow([*words, "--reattach"], "jupyter-hop slurm submit")
            except NoReattach:
                pass
        row = None if self.req.new else self.live_job()
        if row is not None:
            self.job_id = str(row["job_id"])
            self.say(f"Reattaching to Slurm job {self.job_id} ({row['state']}) of profile {self.req.profile} on "
                     f"{self.req.host}.", to_err=True)
            return self.follow(["slurm", "instructions", self.job_id, "--json", "--wait"],
                               "jupyter-hop slurm instructions")
        return self.follow(words, "jupyter-hop slurm submit")

    def token(self, obj: dict[str, Any]) -> str:
        shown = self.hop([*_plain(obj["instructions"]), "--show-token"], timeout=LIST_TIMEOUT,
                         what="jupyter-hop instructions --show-token")
        found = objects.the_object(self.req.host, shown.stdout).get("token")
        return str(found) if found else ""

    # ---- the laptop side

    def open_tunnel(self, obj: dict[str, Any]) -> Tunnel:
        remote = ssh_argv.check_remote(obj["tunnel"]["remote"])
        wanted = self.req.port or int(obj["tunnel"]["local_port"])
        taken: set[int] = set()
        while True:
            port = ports.pick(wanted, skip=frozenset(taken))
            spec = ssh_argv.forward_spec(port, remote)
            try:
                self.session.forward(obj, spec)
                break
            except HopError:
                if ports.is_free(port):
                    raise
                taken.add(port)  # bound by someone else between our test and ssh's bind
        if port != wanted:
            self.say(f"Laptop port {wanted} is taken; using {port}.", to_err=True)
        url = objects.laptop_url(obj["url"], port)
        probe.wait_answers(url, timeout=PROBE_TIMEOUT, what=f"the Jupyter server of {self.req.host}")
        return Tunnel(spec=spec, url=url, reopen=lambda: self.session.forward(obj, spec))

    def again(self, *, stop: bool = False) -> str:
        flag = {"slurm": "", "systemd": " --systemd", "run": " --run"}[self.req.mode or "slurm"]
        return f"jupyter hop connect{flag}{' --stop' if stop else ''} {self.req.host} {self.req.profile}"

    def left_running(self, *, queued: bool = False) -> None:
        if self.req.mode == "run":
            return  # stopped with connect (see end_run)
        if self.req.mode == "systemd":
            what = f"The unit of profile {self.req.profile} on {self.req.host} keeps running"
        elif self.job_id:
            what = f"Slurm job {self.job_id} {'is still queued' if queued else 'keeps running'}"
        else:
            return
        self.say(f"{what}. Reattach: `{self.again()}`; stop it: `{self.again(stop=True)}`", to_err=True)

    def start_run(self) -> dict[str, Any]:
        """`run PROFILE --json` over the master: a foreground server whose object is its first stdout line."""
        process = self.session.popen(self.session.hop_line(["run", self.req.profile, "--json"]))
        self.server = process
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            stderr = process.stderr.read() if process.stderr is not None else ""
            code = process.wait()
            raise self._failed(code, stderr, "jupyter-hop run")
        obj = objects.the_object(self.req.host, line)
        self.stop_words = _plain(obj["stop"])
        return obj

    def end_run(self) -> None:
        """A --run server lives as long as connect: its own stop command, over the master. Asked even when our
        ssh client is gone: a mux client quits on Ctrl-C whatever was ignored, while the master keeps the session
        (and the server) open."""
        if self.server is None:
            return
        server, self.server = self.server, None
        if self.stop_words:
            try:
                self.hop(self.stop_words, timeout=60, what="jupyter-hop stop")
                self.say(f"Stopped the server of profile {self.req.profile} on {self.req.host}.", to_err=True)
            except HopError as exc:
                self.say(f"Could not stop the server on {self.req.host}: {exc.message}", to_err=True)
        for pipe in (server.stdout, server.stderr):
            if pipe is not None:
                pipe.close()  # the master holds the other ends (ssh passes them over the socket): never read to EOF
        if server.poll() is None:
            server.terminate()
        server.wait(timeout=30)

    # ---- the commands

    def stop(self) -> int:
        if self.req.mode == "systemd":
            self.hop(["stop", self.req.profile], timeout=300, what="jupyter-hop stop")
            self.say(f"Stopped the unit of profile {self.req.profile} on {self.req.host}.")
            return 0
        row = self.live_job()
        if row is None:
            raise HopError(f"no running Slurm job of profile {self.req.profile} on {self.req.host}; "
                           f"`jupyter hop connect {self.req.host} {self.req.profile}` starts one")
        key = str(row["key"])
        self.hop(["stop", key], timeout=300, what="jupyter-hop stop")
        self.say(f"Stopped Slurm job {key} of profile {self.req.profile} on {self.req.host}.")
        return 0

    def connect(self) -> int:
        if self.session.notice:
            self.say(self.session.notice, to_err=True)
        guess, self.req.mode = self.req.mode is None, self.req.mode or "slurm"
        mode = self.req.mode
        if guess:
            obj = self.guessed_slurm()
        elif mode == "slurm":
            obj = self.slurm_object()
        elif mode == "systemd":
            obj = self.follow(["systemd", "start", self.req.profile, "--json"], "jupyter-hop systemd start")
        else:
            obj = self.start_run()
        if obj.get("state") != "ready" or not obj.get("tunnel"):
            raise HopError(f"the jupyter-hop on {self.req.host} said the server is {obj.get('state')}, not ready")
        self.job_id = str(obj.get("job_id") or self.job_id)
        self.ready = True
        token = self.token(obj) if obj.get("auth") == "token" else ""
        tunnel = self.open_tunnel(obj)
        what = {"job": f"Slurm job {self.job_id}", "unit": f"unit {obj.get('unit')}"}.get(obj["kind"], "run")
        self.connected = True  # before the line: a Ctrl-C sent as soon as it is read is a normal end
        self.say(f"Jupyter is ready on {obj['host']} ({what}): {tunnel.url}")
        if token:
            self.say(f"Its token (paste it into the login page): {token}")
        if self.req.browser:
            webbrowser.open(objects.plain_url(tunnel.url))
        self.say("Ctrl-C closes the tunnel and " + ("stops the server." if mode == "run" else
                                                    "leaves the server running."), to_err=True)
        label = f"{obj['host']} {what}"
        supervisor = Supervisor(self.session, tunnel, label=label, ends=objects.ends_at(obj),
                                warn_before=self.req.warn_before, err=self.err)
        try:
            supervisor.run()
        except KeyboardInterrupt:
            supervisor.end_line()
            self.left_running()
            return 0
        return 0

    def main(self) -> int:
        try:
            return self.stop() if self.req.stop else self.connect()
        except KeyboardInterrupt:
            self.left_running(queued=not self.ready)
            if self.connected:  # Ctrl-C is how a connected session ends, also just before the supervisor started
                return 0
            raise Interrupted() from None
        except HopError as exc:
            if self.ready and not isinstance(exc, Interrupted):
                self.left_running()
            raise
        finally:
            try:
                self.end_run()
            finally:
                self.session.close()
