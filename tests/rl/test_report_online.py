"""`thrifty report` on PPO run folders: the online section with its curve and table."""

import json

from thrifty.analysis.report import build_report


def write_run(folder, arm, successes):
    folder.mkdir(parents=True)
    rows = [
        {"env_steps": 1024 * i, "success_rate": s, "mean_return": s * 0.9}
        for i, s in enumerate(successes)
    ]
    (folder / "curve.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "result.json").write_text(json.dumps({"arm": arm}))


def test_report_shows_success_vs_environment_steps(tmp_path):
    write_run(tmp_path / "scratch", "scratch", [0.0, 0.1, 0.2])
    write_run(tmp_path / "bc", "bc-init", [0.9, 0.95, 1.0])
    out = build_report([tmp_path / "scratch", tmp_path / "bc"], tmp_path / "report.html")
    assert "Online RL: success vs environment steps" in out["sections"]
    markdown = (tmp_path / "report.md").read_text()
    assert (tmp_path / "report_files" / "online.png").is_file()
    assert "| bc | bc-init | 2,048 | 0.90 | 1.00 |" in markdown


def test_report_shows_deployed_dpt_policies_beside_baselines(tmp_path):
    run = tmp_path / "dpt"
    (run / "eval").mkdir(parents=True)
    online = {"dpt": {"mean": [0.3, 0.9, 1.2]}, "ucb": {"mean": [0.3, 1.0, 1.7]}}
    (run / "eval" / "bandit.json").write_text(json.dumps({"online": online}))
    out = build_report([run], tmp_path / "report.html")
    assert "Decision-making: deployed DPT policies" in out["sections"]
    markdown = (tmp_path / "report.md").read_text()
    assert "| ucb (dpt) | 1.70 |" in markdown and "| dpt | 1.20 |" in markdown
    assert "zero-shot" not in markdown.lower()  # not mistaken for a BabyLM task
