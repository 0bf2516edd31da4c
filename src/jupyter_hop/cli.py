"""The Typer layer: parse options, call one function per command, turn HopError into one line and an exit code."""

from __future__ import annotations

import os
import sys

import typer

from jupyter_hop.errors import HopError

app = typer.Typer(
    name="jupyter-hop",
    help="Run Jupyter on machines you do not sit at: workstations (systemd) and Slurm compute nodes.",
    no_args_is_help=True,
    # --install-completion/--show-completion: `import typer` loads the completion machinery anyway, so the two
    # options cost each command well under a millisecond.
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error.", envvar="JUPYTER_HOP_DEBUG"),
) -> None:
    if debug:
        os.environ["JUPYTER_HOP_DEBUG"] = "1"


# Which command module defines each top-level command. Building a Typer command inspects its signature, so
# only the module the command line names is imported and registered; help, unknown names and shell completion
# get them all.
COMMAND_MODULES = {
    "init": "profiles", "password": "profiles", "config": "profiles", "run": "run", "instructions": "run",
    "list": "inventory", "stop": "inventory", "doctor": "doctor", "systemd": "systemd", "slurm": "slurm",
    "connect": "connect",
}
GROUPS = ("systemd", "slurm")  # command groups: of these, only the subcommand named is registered


# Set by the completion scripts Typer prints: the words to complete come in other variables, not in argv.
COMPLETE_VAR = "_JUPYTER_HOP_COMPLETE"


def _register(argv: list[str]) -> None:
    import importlib

    words = [word for word in argv if not word.startswith("-")]
    wanted = COMMAND_MODULES.get(words[0]) if words and COMPLETE_VAR not in os.environ else None
    if wanted:
        module = importlib.import_module(f"jupyter_hop.commands.{wanted}")
        if words[0] in GROUPS:
            module.register(app, words[1] if len(words) > 1 else "")
        else:
            module.register(app)
        return
    for name in dict.fromkeys(COMMAND_MODULES.values()):
        importlib.import_module(f"jupyter_hop.commands.{name}").register(app)


def main() -> None:
    """Console entry point: the one place where a HopError becomes a message and an exit code."""
    try:
        _run()
    finally:
        # At exit the interpreter runs full garbage collections over every object the imports made (Typer's
        # and Rich's alone take ~35 ms, more than a render command's own work); frozen objects are skipped.
        # Everything is still freed by reference counting and atexit handlers still run; only cycles left over
        # from before this point are not collected, and a process that is ending needs nothing from them.
        import gc

        gc.freeze()


def _run() -> None:
    _register(sys.argv[1:])
    try:
        # Not standalone: Typer would print usage errors as a multi-line box; here they become one line too.
        code = app(standalone_mode=False)
    except typer.TyperException as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `jupyter-hop` alone: the help is the answer
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2)
        message = " ".join(exc.format_message().split())
        print(f"jupyter-hop: error: {message} (see `jupyter-hop --help`)", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:
        print("jupyter-hop: interrupted", file=sys.stderr)
        sys.exit(130)
    except HopError as exc:
        if os.environ.get("JUPYTER_HOP_DEBUG"):
            import traceback

            traceback.print_exc()
        print(f"jupyter-hop: error: {exc.message}", file=sys.stderr)
        if exc.detail:
            print(exc.detail.rstrip("\n"), file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        print("jupyter-hop: interrupted", file=sys.stderr)
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)  # typer.Exit(code) from a command, returned rather than raised when not standalone
