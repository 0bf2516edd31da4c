"""Bad input through the real CLI: one stderr line naming the problem, no traceback, no file changed."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from labkit.hoptree import HopTree, snapshot

PASSWORD = "correct horse"


@dataclass(frozen=True)
class Case:
    id: str
    args: list[str]
    names: list[str]  # substrings the one error line must contain (the bad value, the key)
    setup: Callable[[HopTree], None] = lambda tree: None
    stdin: str | None = None  # None: stdin is /dev/null, not a terminal
    tty: list[tuple[str, str]] | None = None  # prompts to answer on a real terminal
    wrap: Callable[[HopTree], list[str]] = field(default=lambda tree: [])  # argv prefix (e.g. a read-only mount)
    env: dict[str, str] = field(default_factory=dict)  # the environment the command finds (a Slurm job's, say)


def write_profile(name: str, text: str) -> Callable[[HopTree], None]:
    def setup(tree: HopTree) -> None:
        path = tree.profile(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.replace("@WORK@", str(tree.work)), encoding="utf-8")

    return setup


def make_file(tree: HopTree) -> None:
    (tree.work / "afile").write_text("not a directory\n")


def stray_json(tree: HopTree) -> None:
    (tree.server_dir("good") / "jupyter_server_config.json").write_text('{"IdentityProvider": {"token": "x"}}\n')


def read_only(path: Callable[[HopTree], Path]) -> Callable[[HopTree], list[str]]:
    """Run the command in a private mount namespace where `path` is mounted read-only (root ignores modes)."""

    def wrap(tree: HopTree) -> list[str]:
        target = str(path(tree))
        if os.geteuid() != 0:
            # modes would not do: jupyter-hop makes its own dirs 0700 again (tests/lab/test_faults.py)
            pytest.skip("a read-only mount needs root; CI runs these as root")
        script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" "$1" && shift && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", target]

    return wrap


GOOD_BODY = '[server]\nroot_dir = "@WORK@"\n'


def in_job(var: str, value: str) -> Case:
    """`run` inside a Slurm job whose environment holds a value that would reach the printed ssh lines."""
    env = {"SLURM_JOB_ID": "81234", "SLURMD_NODENAME": "c0412", "SLURM_SUBMIT_HOST": "login1", var: value}
    return Case(f"env-{var}-{value!r}", ["run", "good"], [var, repr(value), "is not allowed"], env=env)


# values from the environment that end up in lines the user pastes: an option, a second line, the heredoc's end
BAD_ENV = [
    in_job(var, value)
    for var in ("SLURM_SUBMIT_HOST", "SLURMD_NODENAME")
    for value in ("login1\nrm -rf ~", "-oProxyCommand=touch /tmp/x", "login 1", "x\nEOF\ntouch /tmp/x", "EOF\n")
] + [
    in_job("LOGNAME", "alice bob"),
    in_job("LOGNAME", "-oProxyCommand=touch /tmp/x"),
    in_job("LOGNAME", "a\nEOF"),
    Case("env-USER-workstation", ["run", "good"], ["USER", "'a;b'"], env={"USER": "a;b"}),
    in_job("SLURM_JOB_ID", "../../x"),
]

def override(option: str, value: str, *names: str, command: tuple[str, ...] = ("slurm", "render")) -> Case:
    """A one-off override with a bad value: named as the option (not the profile key) with the value."""
    return Case(f"override{option}-{value!r}", [*command, "good", option, value], [option, *names])


SUBMIT = ("slurm", "submit")
RUN = ("run",)
INSTALL = ("systemd", "install")
# one-off overrides (`slurm submit good --time 5h`): refused before anything is written, submitted or started
BAD_OVERRIDES = [
    override("--time", "5 hours", "'5 hours'", "MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"),
    override("--time", "1", "'1'", "signal_grace", command=SUBMIT),
    override("--cpus", "many", "'many'", "an integer, 1-4096", command=SUBMIT),
    override("--cpus", "0", "= 0", "1-4096"),
    override("--mem", "16 GB", "'16 GB'", "16G"),
    override("--gpus", "a100:0", "'a100:0'", "type:count", command=SUBMIT),
    override("--gres", "gpu:1;id", "'gpu:1;id'", "gpu:1"),
    override("--partition", "gpu debug", "'gpu debug'", "letters, digits"),
    override("--account", "-A", "'-A'", "letters, digits", command=SUBMIT),
    override("--qos", "$(id)", "'$(id)'", "letters, digits"),
    override("--constraint", "a;b", "'a;b'", "feature names"),
    override("--job-name", "", "''", "letters, digits"),
    override("--sbatch", "--output=x", "'--output=x'", "any sbatch option but"),
    override("--sbatch", "--wrap=ls", "'--wrap=ls'", "any sbatch option but", command=SUBMIT),
    override("--sbatch", "foo", "'foo'", "one sbatch option"),
    override("--sbatch", "-o x", "'-o x'", "any sbatch option but"),
    override("--sbatch", "--x\nrm -rf ~", "'--x\\nrm -rf ~'", "one sbatch option"),
    override("--port", "70000", "70000", "1024-65535", command=RUN),
    override("--port", "http", "'http'", "an integer, 0 (pick a free port) or 1024-65535", command=INSTALL),
    override("--bind", "everywhere", "'everywhere'", "localhost, socket, node", command=RUN),
    override("--app", "jupyterhub", "'jupyterhub'", "lab, server, notebook", command=INSTALL),
    override("--root-dir", "", "''", "a directory path", command=RUN),
    override("--root-dir", "/a\nb", "'/a\\nb'", "on one line", command=INSTALL),
    override("--idle-timeout", "-5", "-5", "0 or more", command=RUN),
    override("--idle-timeout", "soon", "'soon'", "an integer", command=INSTALL),
    Case(
        "override-skipped-directive",
        ["slurm", "render", "site", "--mem", "4G"],
        ["--mem", "'4G'", "skip_directives"],
        setup=write_profile("site", GOOD_BODY + '[slurm]\nskip_directives = ["--mem"]\n'),
    ),
    Case(
        "save-read-only-config-dir",
        ["slurm", "render", "good", "--time", "2:00:00", "--save"],
        ["--save", "good.toml", "read-only"],
        wrap=read_only(lambda tree: tree.config),
    ),
    Case(
        "save-read-only-profile-file",
        ["slurm", "submit", "good", "--cpus", "2", "--save"],
        ["--save", "good.toml", "read-only"],
        wrap=read_only(lambda tree: tree.profile("good")),
    ),
    Case(
        "save-read-only-unit-install",
        ["systemd", "install", "good", "--port", "9000", "--save"],
        ["--save", "good.toml", "read-only"],
        wrap=read_only(lambda tree: tree.config / "profiles"),
    ),
]

# --show-token where stdout is a log that others may read: refused before anything starts or is submitted
IN_JOB = {"SLURM_JOB_ID": "81234", "SLURMD_NODENAME": "c0412", "SLURM_SUBMIT_HOST": "login1"}
IN_UNIT = {"JUPYTER_HOP_UNIT": "jupyter-hop-good.service"}
SHOW_TOKEN = [
    Case("show-token-run-in-job", ["run", "good", "--json", "--show-token"], ["--show-token", "SLURM_JOB_ID",
                                                                              "'81234'"], env=IN_JOB),
    Case("show-token-text-run-in-job", ["run", "good", "--show-token"], ["--show-token", "Slurm job"], env=IN_JOB),
    # --reattach waits for the job it finds: with --no-wait it would print nothing useful
    Case("submit-reattach-no-wait", ["slurm", "submit", "good", "--reattach", "--no-wait"],
         ["--reattach", "--no-wait"]),
    Case("show-token-submit-in-job", ["slurm", "submit", "good", "--json", "--show-token"],
         ["--show-token", "SLURM_JOB_ID"], env=IN_JOB),
    Case("show-token-slurm-instructions-in-job", ["slurm", "instructions", "81234", "--json", "--show-token"],
         ["--show-token", "SLURM_JOB_ID"], env=IN_JOB),
    Case("show-token-run-in-unit", ["run", "good", "--json", "--show-token"],
         ["--show-token", "JUPYTER_HOP_UNIT", "'jupyter-hop-good.service'"], env=IN_UNIT),
    Case("show-token-instructions-in-unit", ["instructions", "good", "--json", "--show-token"],
         ["--show-token", "systemd unit"], env=IN_UNIT),
    Case("show-token-systemd-start-in-unit", ["systemd", "start", "good", "--json", "--show-token"],
         ["--show-token", "JUPYTER_HOP_UNIT"], env=IN_UNIT),
    Case("json-install-without-now", ["systemd", "install", "good", "--json"], ["--json", "--now"]),
]

CASES = [
    Case("missing-profile", ["config", "nosuch"], ["'nosuch'", "jupyter hop init nosuch"]),
    Case("missing-profile-password", ["password", "nosuch", "--password-stdin"], ["'nosuch'"], stdin="pw\n"),
    Case(
        "malformed-toml",
        ["config", "broken"],
        ["broken.toml", "not valid TOML"],
        setup=write_profile("broken", "[server\nroot_dir = \n"),
    ),
    Case(
        "malformed-toml-init",
        ["init", "broken", "--local-port", "9000"],
        ["broken.toml", "not valid TOML"],
        setup=write_profile("broken", "[server\nroot_dir = \n"),
    ),
    Case(
        "control-char-in-comment-init",
        ["init", "cc", "--local-port", "9000"],
        ["cc.toml", "not valid TOML"],
        setup=write_profile("cc", "# a \x1f comment\n" + GOOD_BODY),
    ),
    Case(
        "unknown-key",
        ["config", "k"],
        ["server.colour"],
        setup=write_profile("k", GOOD_BODY + 'colour = "blue"\n'),
    ),
    Case("unknown-section", ["config", "s"], ["[gui]"], setup=write_profile("s", GOOD_BODY + "[gui]\nx = 1\n")),
    Case(
        "port-string",
        ["config", "p"],
        ["server.port", "'8888'"],
        setup=write_profile("p", GOOD_BODY + 'port = "8888"\n'),
    ),
    Case(
        "port-bool",
        ["config", "p"],
        ["server.port", "True"],
        setup=write_profile("p", GOOD_BODY + "port = true\n"),
    ),
    Case("section-not-table", ["config", "t"], ["server", "'x'"], setup=write_profile("t", 'server = "x"\n')),
    Case(
        "root-dir-missing",
        ["init", "new", "--no-password", "--root-dir", "/nonexistent/dir"],
        ["server.root_dir", "/nonexistent/dir"],
    ),
    Case(
        "root-dir-file",
        ["init", "new", "--no-password", "--root-dir", "afile"],
        ["server.root_dir", "afile"],
        setup=make_file,
    ),
    Case("root-dir-empty", ["init", "new", "--no-password", "--root-dir", ""], ["server.root_dir", "''"]),
    Case(
        "empty-password-stdin",
        ["init", "new", "--password-stdin", "--root-dir", "."],
        ["password", "empty"],
        stdin="\n",
    ),
    Case(
        "empty-password-tty",
        ["init", "new", "--root-dir", "."],
        ["password", "empty"],
        tty=[("New Jupyter password:", "")],
    ),
    Case(
        "mismatched-confirmation",
        ["init", "new", "--root-dir", "."],
        ["passwords do not match"],
        tty=[("New Jupyter password:", "one password"), ("Repeat the password:", "another password")],
    ),
    Case(
        "mismatched-confirmation-password-cmd",
        ["password", "good"],
        ["passwords do not match"],
        tty=[("New Jupyter password:", "one password"), ("Repeat the password:", "another password")],
    ),
    Case("password-not-a-terminal", ["init", "new", "--root-dir", "."], ["no terminal", "--password-stdin"]),
    Case("password-cmd-not-a-terminal", ["password", "good"], ["no terminal", "--password-stdin"]),
    Case("password-with-newline", ["password", "good", "--password-stdin"], ["newline"], stdin="two\nlines\n"),
    Case(
        "both-password-flags",
        ["init", "new", "--no-password", "--password-stdin", "--root-dir", "."],
        ["--no-password", "--password-stdin"],
        stdin="pw\n",
    ),
    Case("port-too-high", ["init", "good", "--port", "70000"], ["server.port", "70000"]),
    Case("port-privileged", ["init", "good", "--port", "80"], ["server.port", "80"]),
    Case("port-negative", ["init", "good", "--port=-1"], ["server.port", "-1"]),
    Case("port-not-a-number", ["init", "good", "--port", "abc"], ["--port", "abc"]),
    Case("local-port-zero", ["init", "good", "--local-port", "0"], ["server.local_port", "0"]),
    Case("unknown-app", ["init", "good", "--app", "jupyterhub"], ["server.app", "jupyterhub"]),
    Case("unknown-bind", ["init", "good", "--bind", "everywhere"], ["server.bind", "everywhere"]),
    Case(
        "bind-node-without-password",
        ["init", "open", "--no-password", "--root-dir", ".", "--bind", "node"],
        ["server.bind", "node", "password"],
    ),
    Case(
        "bad-login-host",
        ["init", "good", "--login-host", "-oProxyCommand=touch /tmp/x"],
        ["ssh.login_host", "-oProxyCommand"],
    ),
    Case("bad-ssh-user", ["init", "good", "--ssh-user", "a b"], ["ssh.user", "'a b'"]),
    Case(
        "bad-slurm-time",
        ["config", "j"],
        ["slurm.time", "4 hours"],
        setup=write_profile("j", GOOD_BODY + '[slurm]\ntime = "4 hours"\n'),
    ),
    Case(
        "bad-slurm-mem",
        ["config", "j"],
        ["slurm.mem", "16 GB"],
        setup=write_profile("j", GOOD_BODY + '[slurm]\nmem = "16 GB"\n'),
    ),
    Case(
        "bad-slurm-directive",
        ["config", "j"],
        ["slurm.extra_directives", "--x\\n"],
        setup=write_profile("j", GOOD_BODY + '[slurm]\nextra_directives = ["--x\\nrm -rf ~"]\n'),
    ),
    Case("name-dotdot", ["init", "../x", "--no-password", "--root-dir", "."], ["'../x'"]),
    Case("name-dash", ["init", "--no-password", "--root-dir", ".", "--", "-x"], ["'-x'"]),
    Case("name-too-long", ["config", "n" * 65], ["n" * 65]),
    Case(
        "config-dir-is-a-file",
        ["init", "new", "--no-password", "--root-dir", "."],
        ["jupyter-hop", "Not a directory"],
        setup=lambda tree: (shutil.rmtree(tree.config), tree.config.write_text("a file\n")),
    ),
    Case("name-empty", ["config", ""], ["''"]),
    Case("unknown-option", ["init", "good", "--colour", "blue"], ["--colour"]),
    Case(
        "owned-option-token",
        ["config", "o"],
        ["ServerApp.token"],
        setup=write_profile("o", GOOD_BODY + '[server.options]\n"ServerApp.token" = "abc"\n'),
    ),
    Case(
        "owned-option-hash",
        ["config", "o"],
        ["PasswordIdentityProvider.hashed_password"],
        setup=write_profile("o", GOOD_BODY + '[server.options]\n"PasswordIdentityProvider.hashed_password" = "x"\n'),
    ),
    Case(
        "option-bad-name",
        ["config", "o"],
        ["import os"],
        setup=write_profile("o", GOOD_BODY + '[server.options]\n"import os" = 1\n'),
    ),
    Case(
        "option-keyword-name",
        ["config", "o"],
        ["ServerApp.class"],
        setup=write_profile("o", GOOD_BODY + '[server.options]\n"ServerApp.class" = 1\n'),
    ),
    Case(
        "option-dunder-name",
        ["config", "o"],
        ["ServerApp.__class__"],
        setup=write_profile("o", GOOD_BODY + '[server.options]\n"ServerApp.__class__" = 1\n'),
    ),
    Case(
        "root-dir-relative-in-profile",
        ["config", "rel"],
        ["server.root_dir", "'notebooks'"],
        setup=write_profile("rel", '[server]\nroot_dir = "notebooks"\n'),
    ),
    Case(
        "stray-json-init",
        ["init", "good", "--local-port", "9999"],
        ["jupyter_server_config.json"],
        setup=stray_json,
    ),
    Case(
        "stray-json-password",
        ["password", "good", "--password-stdin"],
        ["jupyter_server_config.json"],
        setup=stray_json,
        stdin="new password\n",
    ),
    Case(
        "read-only-config-dir",
        ["init", "good", "--local-port", "9999"],
        ["cannot write", "Read-only"],
        wrap=read_only(lambda tree: tree.config),
    ),
    Case(
        "read-only-config-new-profile",
        ["init", "other", "--no-password", "--root-dir", "."],
        ["cannot", "Read-only"],
        wrap=read_only(lambda tree: tree.config),
    ),
    Case(
        "read-only-server-dir",
        ["init", "good", "--local-port", "9999"],
        ["cannot write", "Read-only"],
        wrap=read_only(lambda tree: tree.server_dir("good")),
    ),
    Case(
        "read-only-server-dir-password",
        ["password", "good", "--password-stdin"],
        ["cannot write", "Read-only"],
        wrap=read_only(lambda tree: tree.server_dir("good")),
        stdin="new password\n",
    ),
    *BAD_ENV,
    *BAD_OVERRIDES,
    *SHOW_TOKEN,
    # connect refuses these before any ssh runs
    Case("connect-host-option", ["connect", "--", "-oProxyCommand=x", "p"], ["'-oProxyCommand=x'"]),
    Case("connect-host-space", ["connect", "a b"], ["'a b'"]),
    Case("connect-warn-before", ["connect", "hpc", "--warn-before", "-1"], ["--warn-before", "-1"]),
    Case("connect-port", ["connect", "hpc", "--port", "80"], ["80", "1024 to 65535"]),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> HopTree:
    """A tree with one good profile (`good`, with a password), made once by the real CLI."""
    tree = HopTree.make(tmp_path_factory.mktemp("template"))
    done = tree.hop(["init", "good", "--password-stdin", "--root-dir", str(tree.work)], stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    return tree


def test_enough_cases() -> None:
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, template: HopTree, tmp_path: Path) -> None:
    base = tmp_path / "t"
    shutil.copytree(template.base, base, symlinks=True)
    tree = HopTree(base)
    case.setup(tree)
    before = snapshot(base)
    if case.tty is not None:
        result = tree.hop_tty(case.args, case.tty)
        stderr, code = result.stderr, result.returncode
        assert result.answered == [prompt for prompt, _ in case.tty], "the terminal prompts did not all appear"
    else:
        done = tree.hop(case.args, stdin=case.stdin, prefix=case.wrap(tree), env=case.env)
        stderr, code = done.stderr, done.returncode
    assert code != 0
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"stderr is not one line:\n{stderr}"
    assert lines[0].startswith("jupyter-hop: error: "), lines[0]
    for needle in case.names:
        assert needle in lines[0], f"{needle!r} not named in: {lines[0]}"
    assert PASSWORD not in stderr
    assert snapshot(base) == before, "files changed although the command failed"
    assert not processes_using(base), "something the command started still runs"


def processes_using(base: Path) -> list[str]:
    """Command lines of processes that name the test's tree (a server or launcher left behind would)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if proc.name.isdigit() and str(base) in argv:
            found.append(argv)
    return found
