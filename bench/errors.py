"""Expected errors and exit codes, the same for every command (README: "Exit codes").

An expected error is a problem with the user's input or environment that bench can
explain in one message (a missing corpus, unknown name, bad configuration, missing
weights); anything else is a bug and keeps its traceback. ``--debug`` (or
``runtime.log_level=DEBUG``) shows the traceback of expected errors too.
"""

from __future__ import annotations

EXIT_OK = 0
#: the work ran and some of it failed: a task (bench run), a data check (bench prepare),
#: a regression (bench check), an interface check (bench check-upstream)
EXIT_FAILED = 1
#: nothing could be done as asked: bad command line, configuration, name or file, an
#: upstream that cannot be loaded, a gate that cannot evaluate
EXIT_USAGE = 2
#: stopped by Ctrl-C (SIGINT) or SIGTERM: 128 + the signal number, as shells report
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class UsageError(ValueError):
    """The command line asks for something that cannot be done (e.g. --task and --suite)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Ctrl-C would be, so that both stop a run the same clean way."""


#: expected errors whose exit code is EXIT_FAILED (the data or a task); others: EXIT_USAGE
FAILURE_ERRORS = (
    "bench.data.DataError",
    "bench.audio.AudioError",
    "bench.cache.CacheError",
    "bench.extract.UpstreamOutputError",
    "bench.tracking.TrackingError",
)
USAGE_ERRORS = (
    "bench.errors.UsageError",
    "bench.config.ConfigError",
    "bench.registry.UnknownNameError",
    "bench.runner.UpstreamLoadError",
    "bench.report.ReportError",
    "bench.gate.GateError",
    "bench.baseline.BaselineError",
    "bench.upstreams.hf_checkpoint.CheckpointUnavailableError",
    "bench.upstreams.bundle.RemoteCodeNotTrustedError",
    "bench.upstreams.CheckpointNotRecognisedError",
)


def _class_names(error: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(error).__mro__}


def is_expected(error: BaseException) -> bool:
    return bool(_class_names(error) & {*FAILURE_ERRORS, *USAGE_ERRORS})


def exit_code_of(error: BaseException) -> int:
    return EXIT_FAILED if _class_names(error) & set(FAILURE_ERRORS) else EXIT_USAGE


#: the pip extra that installs a module some tasks or upstreams need (pyproject.toml)
EXTRA_OF_MODULE = {
    "sed_eval": "hear",
    "dcase_util": "hear",
    "transformers": "hf",
    "s3prl": "s3prl",
    "praatio": "units",
    "flask": "ui",
    "ray": "ray",
    "submitit": "slurm",
    "pyannote": "diarization",
    "pesq": "enhancement",
    "pystoi": "enhancement",
    "sentencepiece": "translation",
    "sacrebleu": "translation",
    "sacremoses": "translation",
    "pygtrie": "lm",
    "kenlm": "lm",
}


def missing_package_message(error: BaseException) -> str | None:
    """For a missing optional package: which one, and the command that installs it."""
    if not isinstance(error, ModuleNotFoundError) or not error.name:
        return None
    package = error.name.split(".")[0]
    extra = EXTRA_OF_MODULE.get(package)
    if extra is None:
        return f"the Python package '{package}' is not installed; pip install {package}"
    return (
        f"the Python package '{package}' is not installed; pip install 'bench-ssl[{extra}]' "
        f"(in a clone: pip install -e '.[{extra}]')"
    )
