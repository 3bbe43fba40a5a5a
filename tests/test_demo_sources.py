from thrifty.cli.demo import training_sources


def test_the_demo_never_trains_on_held_out_text(tmp_path):
    babylm = tmp_path / "babylm"
    for sub in ("train_10M", "heldout", "sample_1M_dev"):
        (babylm / sub).mkdir(parents=True)
        (babylm / sub / "a.train").write_text("some words\n")
    (babylm / "loose.train").write_text("more words\n")
    names = [p.rsplit("/", 1)[-1] for p in training_sources(babylm)]
    assert names == ["loose.train", "sample_1M_dev", "train_10M"]
