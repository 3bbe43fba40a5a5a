"""The bandit dataset: round trip through the data-source seam, its ledger, bad input."""

import json
from dataclasses import replace

import pytest
import torch

from thrifty.cli.main import main
from thrifty.config import ModelConfig
from thrifty.data.bandits import BanditSettings, prepare_bandits
from thrifty.data.budget import Ledger
from thrifty.data.source import open_source
from thrifty.errors import UserError

SETTINGS = BanditSettings(arms=4, horizon=6, seed=3)


def test_round_trip_through_the_source_and_the_ledger(tmp_path):
    manifest = prepare_bandits(tmp_path / "b", SETTINGS, tasks=20, valid_tasks=5)
    assert manifest["modality"] == "bandit" and manifest["arms"] == 4
    source = open_source(tmp_path / "b", "train")
    assert source.unit == "transitions" and source.num_items(0) == 20
    fields = source.batch([0, 7, 19], 7)
    context, actions = fields["context"], fields["actions"]
    assert context.shape == (3, 7, 6) and actions.shape == (3,) and actions.dtype == torch.long
    assert context[:, 0].tolist() == [[0, 0, 0, 0, 0, 1]] * 3  # the query token
    assert (context[:, 1:, :4].sum(-1) == 1).all() and (context[:, 1:, -1] == 0).all()
    assert source.units_per_token == pytest.approx(6 / 7)
    model = source.fit(ModelConfig(size="nano", max_seq_len=16, stem={"name": "transitions"}))
    assert model.stem["arms"] == 4 and source.item_tokens(model) == 7

    ledger = Ledger.from_dict(manifest["ledger"])
    assert ledger.unit == "transitions" and ledger.train_words == 120
    assert ledger.budget_words == ledger.charged_words() == 150 and not ledger.violations()
    entry = ledger.sources[0]
    assert entry["synthetic"] and entry["generator"]["arms"] == 4 and len(entry["sha256"]) == 64
    on_disk = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert on_disk["ledger"]["unit"] == "transitions"
    assert main(["audit", str(tmp_path / "b")]) == 0

    again = prepare_bandits(tmp_path / "c", SETTINGS, tasks=20, valid_tasks=5)
    assert again["ledger"]["sources"][0]["sha256"] == entry["sha256"]  # the seed decides all
    other = prepare_bandits(tmp_path / "d", replace(SETTINGS, seed=4), tasks=20, valid_tasks=5)
    assert other["ledger"]["sources"][0]["sha256"] != entry["sha256"]


def test_mix_behaviour_and_bernoulli_rewards(tmp_path):
    settings = replace(SETTINGS, noise="bernoulli", behaviour="mix", horizon=40)
    prepare_bandits(tmp_path / "b", settings, tasks=50)
    fields = open_source(tmp_path / "b", "train").batch(range(50), 41)
    rewards = fields["context"][:, 1:, 4]
    assert set(rewards.unique().tolist()) <= {0.0, 1.0}
    pulls = fields["context"][:, 1:, :4].sum(1)  # (B, arms): some tasks lean on one arm
    assert (pulls.max(1).values > 20).any()


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--arms", "1"], "--arms=1"),
        (["--horizon", "0"], "--horizon=0"),
        (["--tasks", "0"], "--tasks=0"),
        (["--noise", "cauchy"], "--noise="),
        (["--behaviour", "expert"], "--behaviour="),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_option(tmp_path, capsys, argv, option):
    assert main(["bandit-task", "--out", str(tmp_path / "b"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and option in err and "\n" not in err
    assert not (tmp_path / "b").exists()


def test_a_model_the_data_cannot_feed_is_a_user_error(tmp_path):
    prepare_bandits(tmp_path / "b", SETTINGS, tasks=4, valid_tasks=1)
    source = open_source(tmp_path / "b", "train")
    with pytest.raises(UserError, match="model.stem=transitions"):
        source.fit(ModelConfig(size="nano"))
    with pytest.raises(UserError, match="model.stem.arms=3"):
        source.fit(ModelConfig(size="nano", stem={"name": "transitions", "arms": 3}))
    with pytest.raises(UserError, match="model.max_seq_len=4"):
        source.fit(ModelConfig(size="nano", max_seq_len=4, stem={"name": "transitions"}))
