"""A git repository of model revisions: one commit per model folder, one branch per revision.

This is how the Hugging Face Hub stores revisions, and how BabyLM 2025 asks for intermediate
checkpoints (branches ``chck_1M``, ``chck_2M``, ... of the model's repository).

Written through the ``git`` command (2.28 or newer, for ``init -b``) and not GitPython: GitPython
runs the same executable for nearly everything it does, so git must be installed either way; it
is in maintenance mode; and the handful of commands needed here read plainly as argument lists.

Every command runs with the user's and the system's git configuration switched off, without
hook templates, and with a fixed author and committer: a global ``commit.gpgsign``, a hooks
path, ``core.autocrlf`` or an LFS filter must not change (or stop) what is committed, and a
machine with no ``user.email`` must work. Variables such as ``GIT_DIR`` that a calling git hook
may have set are dropped, so the commands touch only the repository they are given.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from thrifty.errors import UserError

AUTHOR = ("thrifty", "thrifty@localhost")
# Variables that would point the commands at another repository, index or work tree.
_REDIRECTS = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _REDIRECTS}
    name, email = AUTHOR
    env |= {
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }
    return env


def git(repo: Path, *args: str, work_tree: Path | None = None) -> str:
    """Run one git command in ``repo`` (optionally on another ``work_tree``); its stdout."""
    if shutil.which("git") is None:
        raise UserError("the git command is needed to write a repository of revisions; install git")
    where = ["-C", str(repo)]
    if work_tree is not None:  # run inside the work tree, so that paths are relative to it
        git_dir = str((repo / ".git").resolve())
        where = ["-C", str(work_tree), "--git-dir", git_dir, "--work-tree", "."]
    # core.fsync: the objects are on disk before the folder is renamed into place
    done = subprocess.run(
        ["git", "-c", "core.fsync=all", *where, *args],
        env=_env(),
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise UserError(f"git {' '.join(args)} failed in {repo}: {done.stderr.strip()}")
    return done.stdout.strip()


def init(repo: Path) -> None:
    """An empty repository whose first commit will be on ``main``."""
    repo.mkdir(parents=True)
    git(repo, "init", "--quiet", "--initial-branch=main", "--template=")


def commit_folder(repo: Path, folder: Path, message: str) -> str:
    """Commit exactly the files of ``folder`` (files of the previous commit that it lacks are
    deleted) on the current branch; the new commit's id."""
    git(repo, "add", "--all", work_tree=folder)
    git(repo, "commit", "--quiet", "--no-verify", "--allow-empty", "-m", message, work_tree=folder)
    return git(repo, "rev-parse", "HEAD")


def branch(repo: Path, name: str, commit: str) -> None:
    git(repo, "branch", name, commit)


def branches(repo: Path) -> list[str]:
    """The repository's branch names, sorted."""
    out = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads")
    return sorted(out.split())


def checkout_revision(repo: str | Path, revision: str, dest: str | Path) -> Path:
    """Clone the branch ``revision`` of ``repo`` into the new folder ``dest``; it then loads with
    ``from_pretrained(dest)`` (transformers ignores ``revision=`` for a local folder)."""
    dest = Path(dest)
    if dest.exists():
        raise UserError(f"{dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    git(
        dest.parent,
        "clone",
        "--quiet",
        "--template=",
        "--branch",
        revision,
        "--single-branch",
        str(Path(repo).resolve()),
        str(dest.resolve()),
    )
    return dest
