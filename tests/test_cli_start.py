"""Building the `thrifty` parser stays light: `thrifty --help` and a bad argument answer without
importing torch, and names the parser lists itself agree with the registries they stand for."""

import subprocess
import sys

from thrifty.cli.finetune import TASK_NAMES
from thrifty.cli.main import main
from thrifty.eval.finetune.tasks import TASKS


def test_the_parser_is_built_without_torch():
    code = "import sys; from thrifty.cli.main import build_parser; build_parser(); print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"  # noqa: E501
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_listed_fine_tuning_tasks_are_the_registered_ones():
    assert list(TASK_NAMES) == sorted(TASKS)


def test_an_unknown_task_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["finetune", str(tmp_path), "--task", "rte2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean 'rte'" in err
