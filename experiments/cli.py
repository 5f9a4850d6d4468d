"""What the command-line scripts share: a user's mistake is one ``error:`` message, exit status 2.

`parse_flags` is the scripts' flag parser (``app.run(main, flags_parser=cli.parse_flags)``): a
misspelt flag or ``--config.<key>`` override names the key, the config file and the closest
existing keys, instead of a traceback. `config_from_flag` loads ``--config`` (the file is read
when first used) and resolves it (`vae_jax.config.resolve`). `exit_on_user_errors` turns the
project's user errors (`vae_jax.errors.USER_ERRORS`) into the same message: one line, except a
dataset that is not found, whose message lists the places tried and the ways to get it.
`check_flags`, first thing in a script's ``main``, checks its own flags (counts, ranges, choices,
paths) against rules (`Rule`: `at_least`, `one_of`, `each`, ...): a bad value is a `ConfigError`,
one ``error:`` line naming the flag, the value given and what to pass, before any data or model
is loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

from absl import app, flags
from ml_collections import config_flags

from vae_jax import config as config_lib
from vae_jax import parallel
from vae_jax.errors import USER_ERRORS, ConfigError, WriteError


def _config_path(argv: list[str]) -> str:
    return next((arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")), "the config")


def _describe(argv: list[str], error: Exception) -> str:
    known = set(config_lib.dotted_keys(config_lib.default_config()))
    for arg in argv[1:]:
        if arg.startswith("--config."):
            name = arg[len("--config.") :].split("=", 1)[0]
            if name not in known:
                return f"{arg}: " + config_lib.unknown_key_message(name, where=_config_path(argv))
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, flags.Error):
        return f"{lines[0] if lines else error} (see --help for the flags)"
    # Not a flag's error: the config file failed while it was loaded.
    detail = f"{type(error).__name__}: {lines[-1]}" if lines else type(error).__name__
    return f"--config={_config_path(argv)} cannot be loaded ({detail}); it must define get_config()."


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, with a mistaken flag or override as one ``error:`` line (exit 2)."""
    try:
        return flags.FLAGS(argv)
    except Exception as error:  # flags.Error, or ml_collections' errors for a bad --config.<key>=<value>
        print(f"error: {_describe(argv, error)}", file=sys.stderr)
        sys.exit(2)


def config_from_flag(name: str = "config"):
    """The resolved config of the ``--config`` file and its overrides; `ConfigError` when the
    file cannot be loaded or an override does not fit."""
    path = config_flags.get_config_filename(flags.FLAGS[name])
    if not path:
        raise ConfigError(f"--{name} is required: e.g. --{name}=configs/vae.py.")
    if not os.path.isfile(path):
        raise ConfigError(f"--{name}={path}: no such file; pass a config file such as configs/vae.py.")
    try:
        values = flags.FLAGS[name].value.to_dict()  # the file is imported when first used
    except Exception as error:  # any error of the user's file
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = f"{type(error).__name__}: {lines[-1]}" if lines else type(error).__name__
        raise ConfigError(f"--{name}={path} cannot be loaded ({detail}); it must define get_config().") from None
    return config_lib.resolve(values, where=path)


def _write_traceback(error: BaseException, log_dir: str | None) -> str | None:
    """The traceback of ``error`` (and its notes) in ``log_dir/errors.log``, or in the temporary
    directory when that cannot be written (a full disk); returns the file's path."""
    text = time.strftime("%Y-%m-%d %H:%M:%S ") + "".join(traceback.format_exception(error)) + "\n"
    for directory in [log_dir, tempfile.gettempdir()]:
        if not directory or not os.path.isdir(directory):
            continue
        name = "errors.log" if directory == log_dir else f"vae_jax-errors-{os.getpid()}.log"
        try:
            with open(os.path.join(directory, name), "a") as f:
                f.write(text)
            return os.path.join(directory, name)
        except OSError:
            continue
    return None


@contextlib.contextmanager
def exit_on_user_errors(log_dir: str | None = None):
    """Prints a user error (`USER_ERRORS`) raised in the block as one ``error:`` message and exits 2.
    For a failed write, the traceback goes to ``log_dir/errors.log`` (named in the line), and
    the background threads of the interrupted save end quietly."""
    try:
        yield
    except USER_ERRORS as error:
        message = str(error)
        if isinstance(error, WriteError):
            path = _write_traceback(error, log_dir)
            message += f" (details: {path})" if path else ""
        print(f"error: {message}", file=sys.__stderr__)  # the console, also after a failed checkpoint write
        sys.__stderr__.flush()
        if isinstance(error, WriteError):  # skip the interpreter's teardown of the abandoned save's threads
            os._exit(2)
        sys.exit(2)


def run(main, log_dir=lambda: None) -> None:
    """``app.run(main)`` with `parse_flags` and `exit_on_user_errors` around ``main`` (the lecture
    scripts, the report and the benchmark; ``log_dir()``: where a failed write's traceback goes)."""

    def guarded(argv):
        with exit_on_user_errors(log_dir()):
            return main(argv)

    app.run(guarded, flags_parser=parse_flags)


@dataclasses.dataclass(frozen=True)
class Rule:
    """What a flag's value must be, for `check_flags`: ``ok(value)`` says whether it is (it never
    raises), ``expected`` what to pass (the error line reads ``pass <expected>``). For a list flag
    made with `each`, ``element`` is the rule of one item, and the error names the first bad one."""

    ok: Callable[[Any], bool]
    expected: str
    element: Rule | None = None


def check_flags(**rules: Rule) -> None:
    """`ConfigError` for the first flag (in the order given, by name) whose value breaks its rule:
    ``--<name>=<value>: pass <expected>, e.g. the default --<name>=<default>.`` A flag whose value
    is None (not given, no default) is not checked: absl reports a missing required flag itself."""
    for name, rule in rules.items():
        flag = flags.FLAGS[name]
        value = flag.value
        if value is None or rule.ok(value):
            continue
        problem = ""
        if rule.element is not None:
            bad = next((item for item in value if not rule.element.ok(item)), None)
            if bad is not None:
                problem = f"{shlex.quote(str(bad))} is not {rule.element.expected}; "
        default = flag.default
        hint = ""
        if default is not None and default != value and rule.ok(default):
            hint = f", e.g. the default {as_given(name, default)}"
        raise ConfigError(f"{as_given(name, value)}: {problem}pass {rule.expected}{hint}.")


def as_given(name: str, value) -> str:
    """``--<name>=<value>`` as typed on a command line (a list comma-separated, ``--[no]<name>``
    for a boolean, quoted for the shell where needed)."""
    if isinstance(value, bool):
        return f"--{'' if value else 'no'}{name}"
    text = ",".join(str(item) for item in value) if isinstance(value, (list, tuple)) else str(value)
    return f"--{name}={shlex.quote(text)}"


def at_least(minimum: int) -> Rule:
    """An integer flag's value >= ``minimum`` (a count: 1; an index or an optional count: 0)."""
    return Rule(lambda value: value >= minimum, f"an integer >= {minimum}")


def positive() -> Rule:
    """A float flag's value: finite and > 0."""
    return Rule(lambda value: math.isfinite(value) and value > 0, "a number > 0")


def one_of(choices) -> Rule:
    """A string flag's value: one of ``choices``."""
    choices = tuple(choices)
    return Rule(lambda value: value in choices, f"one of {', '.join(choices)}")


def number(minimum: float, *, integer: bool = False, above: bool = False) -> Rule:
    """An item of a list flag (text): a finite number (an integer with ``integer``) >= ``minimum``
    (> ``minimum`` with ``above``)."""

    def ok(text) -> bool:
        try:
            value = int(text) if integer else float(text)
        except (TypeError, ValueError):
            return False
        return math.isfinite(value) and (value > minimum if above else value >= minimum)

    kind = "an integer" if integer else "a number"
    return Rule(ok, f"{kind} {'>' if above else '>='} {minimum:g}")


def each(element: Rule, expected: str, *, allow_empty: bool = False) -> Rule:
    """A list flag's value: every item passes ``element`` (and at least one item, unless
    ``allow_empty``); ``expected`` says what to pass, e.g. ``comma-separated integers >= 1``."""
    return Rule(
        lambda value: (allow_empty or len(value) > 0) and all(element.ok(item) for item in value), expected, element
    )


def _path(text: str) -> str:
    return os.path.expanduser(os.path.expandvars(text))


def existing_directory() -> Rule:
    return Rule(lambda value: bool(value) and os.path.isdir(_path(value)), "an existing directory")


def usable_directory() -> Rule:
    """A directory a script writes into: an existing one, or a new one it creates (not a file)."""
    return Rule(
        lambda value: bool(value) and (os.path.isdir(_path(value)) or not os.path.exists(_path(value))),
        "a directory (an existing one or a new one; not a file)",
    )


def _new_or_empty(path: str) -> bool:
    if not os.path.exists(path):
        return True
    try:
        return os.path.isdir(path) and not os.listdir(path)
    except OSError:  # unreadable
        return False


def new_or_empty_directory() -> Rule:
    return Rule(lambda value: bool(value) and _new_or_empty(_path(value)), "a new or empty directory")


def file_in_existing_directory() -> Rule:
    """A file to write: its directory exists and it is not a directory itself."""
    return Rule(
        lambda value: (
            bool(value)
            and os.path.isdir(os.path.dirname(os.path.abspath(_path(value))))
            and not os.path.isdir(_path(value))
        ),
        "a file name in an existing directory",
    )


def _host_port(value: str) -> bool:
    host, _, port = value.rpartition(":")
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def process_flag_rules() -> dict[str, Rule]:
    """The rules of `define_process_flags`'s flags, for `check_flags`."""
    return {
        "coordinator_address": Rule(lambda value: not value or _host_port(value), "HOST:PORT, e.g. 10.0.0.1:1234"),
        "num_processes": at_least(1),
        "process_id": Rule(
            lambda value: value >= 0 and (flags.FLAGS.num_processes is None or value < flags.FLAGS.num_processes),
            "an integer from 0 to num_processes - 1 (0 on the coordinator)",
        ),
    }


def define_process_flags() -> None:
    """``--coordinator_address``, ``--num_processes`` and ``--process_id`` of a multi-process
    run or sweep (`vae_jax.parallel.initialize`; detected under SLURM / Open MPI)."""
    flags.DEFINE_string(
        "coordinator_address",
        None,
        "Multi-process runs: HOST:PORT of process 0, where it serves "
        "jax.distributed's coordinator (the same in every process). Detected under SLURM / Open MPI.",
    )
    flags.DEFINE_integer("num_processes", None, "Multi-process runs: how many processes take part.")
    flags.DEFINE_integer(
        "process_id",
        None,
        "Multi-process runs: this process's index, 0 .. num_processes - 1 (0 writes the logs, figures, results).",
    )


def initialize_processes() -> None:
    """Starts jax.distributed from the flags of `define_process_flags` (first of all)."""
    FLAGS = flags.FLAGS
    parallel.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
