"""What a newcomer meets first: one clear message per expected error, the same exit codes
and prefixes in every command, overrides anywhere, and no data made where not asked."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hear_fakes import multiclass_dir

from bench.cli import main
from bench.cli.check import register as register_check
from bench.cli.common import split_overrides
from bench.errors import EXIT_FAILED, EXIT_USAGE

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def isolated(tmp_path: Path) -> list[str]:
    return [f"paths.workspace={tmp_path / 'workspace'}", "tracking.enabled=false"]


def one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("bench: error:")]
    assert len(errors) == 1, stderr
    return errors[0]


def bad_yaml(tmp_path: Path) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text("probe: [unclosed\n")
    return str(path)


CASES = [
    (["-u", "./no/such/checkpoint"], "no checkpoint at './no/such/checkpoint'"),
    (["-u", str(FIXTURES / "spear" / "tiny-ds2")], "but no weights file (model.safetensors"),
    (["-u", str(FIXTURES / "spear" / "tiny-ds2")], "config.json declares model_type 'spear'"),
    (["-u", "wavlm_base_plus"], "HF_HUB_OFFLINE=1 forbids downloading"),
    (["-u", "org/not-cached"], "For a Hugging Face hub id, use hf:org/not-cached"),
    (["--device", "gpu"], "extract.device must be auto, cpu, cuda, cuda:N or mps, not 'gpu'"),
    (["--config", "nope.yaml"], "configuration file nope.yaml does not exist"),
    (["probe.sedes=[1]"], "Key 'sedes' not in 'ProbeConfig'"),
]


@pytest.mark.parametrize(("extra", "message"), CASES)
def test_expected_errors_are_one_message_and_exit_2(extra, message, isolated, capsys):
    assert main(["run", "--task", "demo.keywords", *extra, *isolated]) == EXIT_USAGE
    assert message in one_error_line(capsys.readouterr().err)


def test_a_transformers_folder_without_weights_says_what_it_lacks(tmp_path, isolated, capsys):
    """Not "not in the Hugging Face cache": the folder exists, its weights file does not."""
    pytest.importorskip("transformers")
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "wavlm"}')
    assert main(["run", "--task", "demo.keywords", "-u", str(folder), *isolated]) == EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)
    assert "found config.json; config.json declares model_type 'wavlm'" in line
    assert "but no weights file (model.safetensors" in line and "hf download" not in line


def test_a_bad_configuration_file_is_one_message(tmp_path, isolated, capsys):
    argv = ["run", "--suite", "demo", "--config", bad_yaml(tmp_path), *isolated]
    assert main(argv) == EXIT_USAGE
    assert "bad configuration in" in one_error_line(capsys.readouterr().err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine has CUDA")
def test_cuda_on_a_cpu_build_says_what_to_use(isolated, capsys):
    argv = ["run", "--task", "demo.keywords", "extract.device=cuda", *isolated]
    assert main(argv) == EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)
    assert "extract.device=cuda, but" in line and "use extract.device=cpu" in line


def test_debug_shows_the_traceback(isolated, capsys):
    argv = ["--debug", "run", "--task", "demo.keywords", "--device", "gpu", *isolated]
    assert main(argv) == EXIT_USAGE
    assert "Traceback" in capsys.readouterr().err
    argv = ["run", "--task", "demo.keywords", "-u", "./nope", "runtime.log_level=DEBUG"]
    assert main([*argv, *isolated]) == EXIT_USAGE
    assert "Traceback" in capsys.readouterr().err


def test_overrides_are_accepted_anywhere_on_the_line(isolated, capsys):
    argv = [
        "run",
        "probe.seeds=[0]",
        "--task",
        "demo.keywords",
        "-u",
        "./nope",
        "runtime.progress=false",
    ]
    assert main([*argv, *isolated]) == EXIT_USAGE  # parsed: it got as far as the upstream
    assert "no checkpoint at './nope'" in one_error_line(capsys.readouterr().err)


def test_an_option_value_that_looks_like_an_override_stays_with_its_option():
    import argparse

    parser = argparse.ArgumentParser()
    register_check(parser.add_subparsers())
    check = parser._subparsers._group_actions[0].choices["check"]
    rest, overrides = split_overrides(
        check, ["--tolerance", "superb.ks=0.5", "probe.seeds=[0]", "--upstream", "u"]
    )
    assert rest == ["--tolerance", "superb.ks=0.5", "--upstream", "u"]
    assert overrides == ["probe.seeds=[0]"]


def test_a_mistyped_data_root_for_a_demo_task_makes_no_data(tmp_path, isolated, capsys):
    typo = tmp_path / "dmeo"
    argv = ["run", "--task", "demo.keywords", "--data-root", str(typo), *isolated]
    assert main(argv) == EXIT_FAILED
    output = capsys.readouterr()
    assert f"no demo data at {typo / 'speech_commands'}" in output.out
    assert "--generate-data" in output.out
    assert not typo.exists() or not any(typo.rglob("*.wav"))
    # bench prepare says the same, with the same exit code as a failed task
    assert main(["prepare", "demo.keywords", "--data-root", str(typo), *isolated]) == EXIT_FAILED
    assert "no demo data at" in one_error_line(capsys.readouterr().err)


def test_a_missing_corpus_has_the_same_exit_code_in_run_and_prepare(tmp_path, isolated, capsys):
    missing = ["--data-root", str(tmp_path / "nothing")]
    assert main(["prepare", "superb.ks", *missing, *isolated]) == EXIT_FAILED
    prepare_error = one_error_line(capsys.readouterr().err)
    argv = ["run", "--task", "superb.ks", "-u", "fbank_no_cmvn", *missing, *isolated]
    assert main(argv) == EXIT_FAILED
    assert "does not exist" in prepare_error and "does not exist" in capsys.readouterr().out


def test_prepare_takes_a_hear_task_dir(tmp_path, isolated, capsys):
    task_dir = multiclass_dir(tmp_path, per_class=2)
    assert main(["prepare", "hear", "--task-dir", str(task_dir), *isolated]) == 0
    assert "hear/toyscene-v1-full: data at" in capsys.readouterr().out


def test_task_dir_without_the_hear_task_is_a_usage_error(tmp_path, isolated, capsys):
    argv = ["run", "--task", "demo.keywords", "--task-dir", str(tmp_path), *isolated]
    assert main(argv) == EXIT_USAGE
    assert "--task-dir is for --task hear" in one_error_line(capsys.readouterr().err)


def test_tasks_of_one_suite_take_its_default_upstream():
    import argparse

    from bench.cli.run import resolve_task_runs

    def default(*tasks: str) -> str | None:
        args = argparse.Namespace(task=list(tasks), suite=None, task_dir=None, data_root=None)
        return resolve_task_runs(args)[1]

    assert default("demo.keywords") == default("demo.events", "demo.digits") == "fbank_no_cmvn"
    assert default("demo.keywords", "superb.ks") is None  # two suites: name the upstream
    assert default("hear") is None


def test_an_unknown_option_is_one_message_naming_the_commands_help(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--task", "demo.keywords", "--bogus", "probe.seeds=[0]"])
    assert stopped.value.code == EXIT_USAGE
    stderr = capsys.readouterr().err
    assert len(stderr.splitlines()) == 2  # the usage line and the error
    line = one_error_line(stderr)
    assert "unrecognized arguments: --bogus (`bench run --help` lists the options)" in line


def test_damaged_safetensors_weights_name_the_file(tmp_path, isolated, capsys):
    import shutil

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(FIXTURES / "spear" / "tiny", checkpoint)
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a download cut short
    argv = ["run", "--task", "demo.keywords", "-u", str(checkpoint), *isolated]
    assert main(argv) == EXIT_USAGE
    line = one_error_line(capsys.readouterr().err)
    assert f"{weights.resolve()} is not a readable safetensors file" in line
    assert "copy or download it again" in line


@pytest.mark.parametrize(
    "argv",
    [["run", "--task", "demo.keywords", "--upstream"], ["baseline", "save", "--upstream", "x"]],
)
def test_command_line_errors_of_every_command_start_with_bench_error(argv, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == EXIT_USAGE
    stderr = capsys.readouterr().err
    assert stderr.splitlines()[0].startswith(f"usage: bench {argv[0]}")  # the command's usage
    one_error_line(stderr)
