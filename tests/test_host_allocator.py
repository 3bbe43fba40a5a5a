"""The command's host allocator setting: large blocks reused after it, glibc's default
without it, and the user's own choice left alone."""

import subprocess
import sys

import pytest

from thrifty import host_allocator
from thrifty.host_allocator import OPT_OUT_VARIABLE, reuse_large_blocks

GLIBC = host_allocator.glibc_mallopt() is not None

# Faults taken by writing a 64 MiB tensor 4 times (16K pages a write if it is mapped afresh),
# after the heap has settled (glibc grows it for a few aligned blocks before it reuses them).
FAULTS = """
import resource, sys, torch
from thrifty.host_allocator import reuse_large_blocks
if sys.argv[1] == "reuse":
    assert reuse_large_blocks({})
def write():
    torch.empty(16 << 20).fill_(1.0)
for _ in range(10):
    write()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    write()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.split()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_large_blocks_are_reused_rather_than_faulted_in_again():
    assert faults("default") > 4 * 8000  # each write maps and faults in a fresh block
    assert faults("reuse") < 1000


@pytest.mark.parametrize(
    "environ",
    [
        {OPT_OUT_VARIABLE: "default"},
        {"MALLOC_MMAP_THRESHOLD_": "1000000"},
        {"MALLOC_TRIM_THRESHOLD_": "0"},
        {"LD_PRELOAD": "/usr/lib/libjemalloc.so.2"},
    ],
)
def test_the_users_own_choice_is_left_alone(environ, monkeypatch):
    monkeypatch.setattr(host_allocator, "glibc_mallopt", pytest.fail)  # never reaches malloc
    assert reuse_large_blocks(environ) is False


def test_the_command_sets_it_before_it_runs(monkeypatch):
    from thrifty.cli import main as cli

    calls = []
    monkeypatch.setattr(cli, "reuse_large_blocks", lambda: calls.append("set"))
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert calls == ["set"]
