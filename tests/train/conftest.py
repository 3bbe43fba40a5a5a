import random
from pathlib import Path

import pytest

from thrifty.config import load_config

WORDS = (
    "the a dog cat child mother ball red big small runs sees wants gives a the is was "
    "happy sad and but then park home book reads plays with to of in on"
).split()


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """A prepared dataset of ~30k synthetic words with a 300-token vocabulary (a few seconds)."""
    from thrifty.data.prepare import prepare

    rng = random.Random(0)
    folder = tmp_path_factory.mktemp("corpus")
    lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) for _ in range(2000)]
    (folder / "text.train").write_text("\n".join(lines) + "\n")
    out = tmp_path_factory.mktemp("prepared") / "tiny"
    prepare(
        [str(folder)], out, budget_words=None, vocab_size=300, valid_fraction=0.05, progress=False
    )
    return out


@pytest.fixture
def nano_cfg(tiny_data, tmp_path):
    def make(*overrides: str):
        root = Path(__file__).parents[2]
        return load_config(
            root / "configs" / "nano.yaml",
            [
                f"data.path={tiny_data}",
                f"runs_dir={tmp_path / 'runs'}",
                "train.threads=1",
                *overrides,
            ],
        )

    return make
