"""What the command-line scripts share: a user's mistake is one ``error:`` message, exit status 2.

`parse_flags` is the scripts' flag parser (``app.run(main, flags_parser=cli.parse_flags)``): a
misspelt flag or ``--config.<key>`` override names the key, the config file and the closest
existing keys, instead of a traceback. `config_from_flag` loads ``--config`` (the file is read
when first used) and resolves it (`vae_jax.config.resolve`). `exit_on_user_errors` turns the
project's user errors (`vae_jax.errors.USER_ERRORS`) into the same message: one line, except a
dataset that is not found, whose message lists the places tried and the ways to get it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
import traceback

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
