"""The report's claims (issue 19): the paper's scorer and scale beside the paper's numbers, each row
against its own baseline, paired statistics over seeds, the PBFS subnets. Hand-made results, no runs."""

import json
import math
from pathlib import Path

import pytest
import yaml

from sparseshare.errors import ConfigError
from sparseshare.experiments.results.report import primary_table, results_table, write_report
from sparseshare.experiments.systems.checks import load_experiment

ROOT = Path(__file__).resolve().parents[2]


def span_system(f1: float, lenient: float, pos: float = 0.9, params: int = 1000) -> dict:
    """A system of a POS task (accuracy) and an NER task (strict f1, primary; lenient beside)."""
    ner = {"f1": f1, "f1_lenient": lenient, "precision": f1, "recall": f1, "accuracy": 0.95}
    return {
        "params": params,
        "tasks": {
            "pos": {"metric": "accuracy", "test": pos, "dev": pos, "all": {"test": {"accuracy": pos}}},
            "ner": {"metric": "f1", "test": f1, "dev": f1, "all": {"test": ner}},
        },
    }


def mse_system(values: dict[str, float], params: int = 1000, **extra) -> dict:
    tasks = {
        t: {"metric": "mse", "test": v, "dev": v, "all": {"test": {"mse": v, "mae": v}}}
        for t, v in values.items()
    }
    return {"params": params, "tasks": tasks, **extra}


def row(table: str, start: str) -> list[str]:
    line = next(x for x in table.splitlines() if x.startswith(start))
    return line.strip("| ").split(" | ")


# 1. ours / paper in the paper's scorer: lenient span F1, the strict one beside it


def test_paper_comparison_prints_lenient_span_f1_with_strict_beside():
    res = {
        "systems": {"single": span_system(0.8340, 0.8012), "sparse": span_system(0.85, 0.82)},
        "paper": {"source": "Table 3", "metrics": {"pos": ["accuracy"], "ner": ["f1"]},
                  "values": {"sparse": {"pos": {"accuracy": 0.9556}, "ner": {"f1": 0.9035}}}},
    }  # fmt: skip
    table = results_table(res)
    paper, primary = table.split("| System | pos test accuracy |")
    assert row(paper, "| Sparse sharing |")[2] == "82.00 (strict 85.00) / 90.35"
    assert row(paper, "| Single task |")[2] == "80.12 (strict 83.40) / -"
    assert row(paper, "| Sparse sharing |")[1] == "90.00 / 95.56"  # accuracy: one score only
    note = next(x for x in paper.splitlines() if x.startswith("Span F1"))
    assert "(ner)" in note and "lenient" in note and "strict" in note and "pos" not in note
    # the primary table (and selection) keep the strict F1
    assert row("| System" + primary, "| Single task |")[4] == "83.40"


def test_sweep_and_seed_tables_compare_the_lenient_span_f1():
    pts = [
        {"point": f"seed={s}", "labels": {"seed": str(s)}, "systems": {"hard": span_system(f1, len_)},
         "paper": {"hard": {"ner": {"f1": 0.8868}}}}
        for s, f1, len_ in ((1, 0.80, 0.77), (2, 0.82, 0.79))
    ]  # fmt: skip
    res = {"sweep": {"axes": {"seed": ["1", "2"]}, "points": pts}}
    table = results_table(res)
    assert row(table, "| 1 | Hard sharing |")[3] == "77.00 (strict 80.00) / 88.68"
    seeds = table.split("Over seeds:")[1]
    sd = 100 * math.sqrt(2 * 0.01**2)
    assert row(seeds, "| Hard sharing | 2 |")[3] == f"78.00 ± {sd:.2f} (strict 81.00) / 88.68"


def test_a_sweeps_average_and_gain_over_hard_are_in_the_papers_scorer():
    """Table 7's 'Δ avg vs hard' is compared with the paper's gain: lenient, strict beside (issue 19)."""
    pt = {"point": "pair=pos+ner", "labels": {"pair": "pos+ner"},
          "systems": {"hard": span_system(0.80, 0.76), "sparse": span_system(0.84, 0.82)},
          "paper": {"sparse": {"avg": {"gain": 0.004}}}}  # fmt: skip
    table = results_table({"sweep": {"axes": {"pair": ["pos+ner"]}, "points": [pt]}})
    head = row(table, "| pair | System |")
    hard, sparse = row(table, "| pos+ner | Hard sharing |"), row(table, "| pos+ner | Sparse sharing |")
    avg, gain = head.index("Avg test"), head.index("Δ avg vs hard")
    assert hard[avg] == "83.00 (strict 85.00)" and sparse[avg] == "86.00 (strict 87.00)"
    assert sparse[gain] == "+3.00 (strict +2.00) / +0.40"
    from sparseshare.experiments.results.figures import AVERAGE, _panel_value

    assert _panel_value(pt, "sparse", pt["systems"]["sparse"], AVERAGE, "", {}) == pytest.approx(0.86)


def test_the_metrics_docstring_says_lenient_f1_can_be_lower():
    import sparseshare.metrics as metrics

    assert "a little higher" not in metrics.__doc__ and "below strict" in metrics.__doc__


# 2. each row against its own baseline


def _matched_systems(with_single_matched: bool) -> dict:
    systems = {
        "single": span_system(0.7997, 0.76, pos=0.8943),
        "hard": span_system(0.7655, 0.73, pos=0.9008),
        "hard_matched": span_system(0.7770, 0.74, pos=0.9064),
    }
    if with_single_matched:
        systems["single_matched"] = span_system(0.8088, 0.77, pos=0.9048)
    return systems


def test_a_matched_row_is_compared_with_the_single_task_at_the_same_budget():
    table = primary_table({"systems": _matched_systems(True)})
    assert row(table, "| Hard sharing, matched budget |")[5] == "-3.18"  # exp1_slice: 77.70 - 80.88
    assert row(table, "| Hard sharing |")[5] == "-3.42"  # the others against single
    assert row(table, "| Single task, matched budget |")[2] == "-"  # a reference row
    note = next(x for x in table.splitlines() if x.startswith("Δ, Δm%"))
    assert "Hard sharing, matched budget against Single task, matched budget (the same budget)" in note
    assert "‡" not in table


def test_without_single_matched_a_matched_row_is_marked_not_budget_matched():
    table = primary_table({"systems": _matched_systems(False)})
    cells = row(table, "| Hard sharing, matched budget |")
    assert cells[5] == "-2.27 ‡" and cells[-2].endswith(" ‡")  # NER Δ and Δm% against single, marked
    assert "‡" not in "".join(row(table, "| Hard sharing |"))
    assert "‡: a matched-budget row against Single task, which trained for fewer epochs" in table


# 3. paired statistics over seeds


def paired_differences(*args, **kwargs):
    from sparseshare.experiments.results.paired import paired_differences

    return paired_differences(*args, **kwargs)


def paired_tables(*args, **kwargs):
    from sparseshare.experiments.results.paired import paired_tables

    return paired_tables(*args, **kwargs)


def _seed_sweep() -> dict:
    """Three seeds x warmup (mtw: single, hard, sparse, hard_matched; none: sparse only)."""
    ner = {"single": [0.80, 0.82, 0.78], "hard": [0.78, 0.79, 0.77], "sparse": [0.81, 0.84, 0.79],
           "hard_matched": [0.79, 0.80, 0.78]}  # fmt: skip
    none = [0.80, 0.82, 0.79]
    points = []
    for i, s in enumerate(("1", "2", "3")):
        systems = {n: span_system(v[i], v[i] - 0.03, pos=0.90 + 0.01 * i) for n, v in ner.items()}
        points.append(
            {"point": f"seed={s},warmup=mtw", "labels": {"seed": s, "warmup": "mtw"}, "systems": systems}
        )
        alone = {"sparse": span_system(none[i], none[i] - 0.03, pos=0.90 + 0.01 * i)}
        points.append(
            {"point": f"seed={s},warmup=none", "labels": {"seed": s, "warmup": "none"}, "systems": alone}
        )
    return {"sweep": {"axes": {"seed": ["1", "2", "3"], "warmup": ["mtw", "none"]}, "points": points}}


def test_paired_differences_against_the_reference_per_seed():
    data = paired_differences(_seed_sweep())
    assert json.loads(json.dumps(data)) == data  # plain data, as results.json
    vs = {(e["at"]["warmup"], e["system"]): e for e in data["against_reference"]}
    assert set(vs) == {("mtw", "hard"), ("mtw", "sparse"), ("mtw", "hard_matched")}
    hard = vs["mtw", "hard"]["tasks"]["ner"]  # per seed: -2, -3, -1 points
    assert hard["diffs"] == pytest.approx([-2.0, -3.0, -1.0])
    assert (hard["mean"], hard["n"]) == (pytest.approx(-2.0), 3)
    assert hard["se"] == pytest.approx(1.0 / math.sqrt(3))  # sd 1
    assert hard["significant"]  # |-2| > 2 x 0.577
    sparse = vs["mtw", "sparse"]["tasks"]["ner"]  # +1, +2, +1: mean 1.33, se 0.33
    assert sparse["mean"] == pytest.approx(4 / 3) and sparse["significant"]
    assert vs["mtw", "sparse"]["tasks"]["pos"]["mean"] == pytest.approx(0.0)
    assert not vs["mtw", "sparse"]["tasks"]["pos"]["significant"]
    assert vs["mtw", "hard"]["average"]["mean"] == pytest.approx(-1.0)  # (pos 0 + ner -2) / 2
    # no single_matched: hard_matched against single, not budget-matched
    assert (
        vs["mtw", "hard_matched"]["reference"] == "single" and not vs["mtw", "hard_matched"]["budget_matched"]
    )
    assert data["skipped"] == [{"at": {"warmup": "none"}, "system": "sparse", "reason": "single did not run"}]


def test_paired_differences_across_an_axis_pair_by_seed():
    data = paired_differences(_seed_sweep())
    (e,) = data["across_axes"]  # only sparse ran at both labels
    assert (e["axis"], e["label"], e["base"], e["system"]) == ("warmup", "none", "mtw", "sparse")
    assert e["tasks"]["ner"]["diffs"] == pytest.approx([-1.0, -2.0, 0.0])  # none - mtw, seed by seed
    assert e["tasks"]["ner"]["se"] == pytest.approx(1 / math.sqrt(3)) and not e["tasks"]["ner"]["significant"]


def test_another_reference_and_the_rendered_tables():
    data = paired_differences(_seed_sweep(), reference="sparse")
    vs = {e["system"]: e for e in data["against_reference"]}
    assert set(vs) == {"single", "hard", "hard_matched"} and vs["hard_matched"]["budget_matched"]
    assert vs["single"]["tasks"]["ner"]["mean"] == pytest.approx(-4 / 3)
    md = paired_tables(_seed_sweep())
    cells = row(md, "| mtw | Hard sharing | Single task |")
    assert cells[3] == "3" and cells[5] == f"-2.00 ± {1 / math.sqrt(3):.2f} *"
    assert row(md, "| mtw | Hard sharing, matched budget |")[2] == "Single task ‡"
    assert row(md, "| warmup | none - mtw |")[3:5] == ["Sparse sharing", "3"]
    assert "did not run at warmup=none: no paired differences against it for Sparse sharing" in md
    assert "pairing by seed is what makes these differences valid" in md and "strict" in md
    assert "Paired differences" in results_table(_seed_sweep())  # rendered into results.md


def test_no_paired_statistics_without_two_seeds():
    res = _seed_sweep()
    res["sweep"]["axes"] = {"warmup": ["mtw", "none"]}
    assert paired_differences(res) is None and paired_tables(res) is None


def test_an_unknown_reference_is_a_one_line_config_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text((ROOT / "configs/pbfs_census.yaml").read_text())
    assert load_experiment(cfg).paper.reference == "pbfs"  # the config's; the default is single task
    assert load_experiment(cfg, ["paper.reference=single"]).paper.reference == "single"
    with pytest.raises(ConfigError) as e:
        load_experiment(cfg, ["paper.reference=pbfss"])
    assert str(e.value).count("\n") == 0 and "'paper.reference': unknown system 'pbfss'" in str(e.value)


def test_the_report_takes_the_reference_from_the_runs_config(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"name": "x", "paper": {"reference": "sparse"}}))
    res = {"experiment": "x", **_seed_sweep()}
    write_report(tmp_path, res)
    md = (tmp_path / "results.md").read_text()
    assert row(md, "| mtw | Single task | Sparse sharing |")
    assert "reference" not in res.get("paper", {})  # results are not changed


# 4. the PBFS subnets


def _pbfs_run(pbfs: dict) -> dict:
    return {"systems": {"single": mse_system({"a": 0.02, "b": 0.03}),
                        "pbfs": mse_system({"a": 0.019, "b": 0.031}, pbfs=pbfs)}}  # fmt: skip


def test_the_pbfs_subnets_each_task_was_tested_on():
    best = {
        "a": {"sparsity": 0.6, "score": -0.02, "step": 10},
        "b": {"sparsity": 0.7, "score": -0.03, "step": 20},
    }
    tested = {"a": {"sparsity": 0.6, "step": 10}, "b": {"sparsity": 0.7, "step": 20}}
    line = next(
        x
        for x in primary_table(_pbfs_run({"tested": tested, "best": best})).splitlines()
        if "PBFS subnets" in x
    )
    assert "a 0.600 / 0.600, b 0.700 / 0.700." in line and "§" not in line and "≠" not in line
    old = primary_table(_pbfs_run({"sparsity": {"a": 0.7, "b": 0.7}, "best": best}))
    line = next(x for x in old.splitlines() if "PBFS subnets" in x)
    assert "a ended at 0.700 §, best 0.600" in line and "§: a result from before the tested subnet" in line


def test_a_sweep_shows_the_tested_and_best_sparsity():
    pbfs = mse_system(
        {"a": 0.02, "b": 0.03}, sparsity={"a": 0.3, "b": 0.5}, best_sparsity={"a": 0.3, "b": 0.5}
    )
    old = mse_system({"a": 0.02, "b": 0.03}, sparsity={"a": 0.4, "b": 0.4})
    pts = [{"point": "u=1", "labels": {"u": "1"}, "systems": {"pbfs": pbfs}},
           {"point": "u=2", "labels": {"u": "2"}, "systems": {"pbfs": old}}]  # fmt: skip
    table = results_table({"sweep": {"axes": {"u": ["1", "2"]}, "points": pts}})
    assert "PBFS sparsity, tested / best dev" in table.splitlines()[0]
    assert row(table, "| 1 | PBFS |")[-1] == "a 0.300 / 0.300, b 0.500 / 0.500"
    assert row(table, "| 2 | PBFS |")[-1] == "ended at 0.400 § (every task)"


# 5. the paper's scale


def _student_run(scale: dict | None) -> dict:
    paper = {"source": "Table 6", "metrics": {"G1": ["mse"]}, "values": {"pbfs": {"G1": {"mse": 0.0005}}}}
    if scale is not None:
        paper.update(scale=scale, scale_note="grades /20 here, /100 in the paper")
    systems = {"single": mse_system({"G1": 0.0150}), "pbfs": mse_system({"G1": 0.0145})}
    return {"experiment": "s", "paper": paper, "systems": systems}


def test_ours_is_scaled_to_the_papers_scale_beside_the_paper_only():
    table = results_table(_student_run({"mse": 0.04}))
    paper, primary = table.split("| System | G1 test mse |")
    assert row(paper, "| PBFS |")[1] == "0.00058 (raw 0.0145) / 0.0005"
    assert (
        "Ours x0.04 for mse to the paper's scale" in paper and "grades /20 here, /100 in the paper." in paper
    )
    assert row("| System" + primary, "| PBFS |")[1] == "0.0145"  # the raw value stays in the main table
    assert row(results_table(_student_run(None)), "| PBFS |")[1] == "0.0145 / 0.0005"


def test_the_report_reads_the_scale_from_the_runs_config(tmp_path):
    (tmp_path / "config.yaml").write_text(
        yaml.safe_dump({"paper": {"scale": {"mse": 0.04}, "scale_note": "n"}})
    )
    write_report(tmp_path, _student_run(None))
    assert "| PBFS | 0.00058 (raw 0.0145) / 0.0005 |" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("name", ["pbfs_student", "pbfs_pools"])
def test_the_student_configs_scale_mse_to_grades_over_100(name):
    paper = load_experiment(ROOT / "configs" / f"{name}.yaml").paper
    assert paper.scale == {"mse": pytest.approx((20 / 100) ** 2)} and "/20" in paper.scale_note


def test_a_bad_scale_is_a_config_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text((ROOT / "configs/pbfs_census.yaml").read_text())
    with pytest.raises(ConfigError, match=r"'paper.scale.mse' must be > 0"):
        load_experiment(cfg, ["paper.scale={mse: 0}"])
    with pytest.raises(ConfigError, match=r"'paper.scale': unknown metric 'rmse'"):
        load_experiment(cfg, ["paper.scale={rmse: 2}"])


# 6. the protocol: a run's preset and every key where it departs from it, in results.md


def test_results_md_lists_every_departure_from_the_preset(tmp_path):
    from sparseshare.experiments.results.report import preset_text

    departures = {"search.warmup_epochs": {"value": 4, "preset": 20},
                  "train.epochs": {"value": 8, "preset": 100}}  # fmt: skip
    res = {"experiment": "x", "systems": {"single": span_system(0.8, 0.78)},
           "preset": {"name": "paper", "departures": departures}}  # fmt: skip
    write_report(tmp_path, res)
    text = (tmp_path / "results.md").read_text()
    assert "Protocol: the 'paper' preset, departing at search.warmup_epochs 4 (preset 20), " in text
    assert "train.epochs 8 (preset 100)." in text
    res["preset"]["departures"] = {}
    assert preset_text(res) == "Protocol: the 'paper' preset, no departures."
    assert preset_text({"systems": {}}) is None  # no preset named: nothing claimed
    sweep = {"sweep": {"points": [{"point": "warmup=none", "preset": {"name": "paper", "departures": {
        "search.warmup_epochs": {"value": 0, "preset": 20}}}}]}}  # fmt: skip
    want = "warmup=none: the 'paper' preset, departing at search.warmup_epochs 0 (preset 20)."
    assert preset_text(sweep) == f"Protocol, per point: {want}"


def test_a_run_records_how_the_report_compares_and_pairs(tmp_path):
    """results.json alone reproduces results.md: the paper options travel with it."""
    from sparseshare.cli import main

    out = tmp_path / "r"
    argv = ["run", str(ROOT / "configs/smoke.yaml"), "--out", str(out), "--set", "systems=[single]",
            "--set", "search.preset=fast", "--set", "search.warmup_epochs=1",
            "--set", "paper.scale={f1: 0.5}"]  # fmt: skip
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["paper"]["scale"] == {"f1": 0.5} and res["paper"]["reference"] == "single"
    # named by --set, the preset replaces smoke.yaml's search budget; the key set after it departs
    assert res["preset"]["name"] == "fast"
    assert res["preset"]["departures"] == {"search.warmup_epochs": {"value": 1, "preset": 4}}
    assert "Protocol: the 'fast' preset" in (out / "results.md").read_text()


def test_the_sweep_figure_plots_what_the_comparison_prints():
    """Beside the paper's dashed line: the lenient span F1 and the scaled metric."""
    from sparseshare.experiments.results.figures import _panel_value

    sys = span_system(0.85, 0.82)
    assert _panel_value({}, "sparse", sys, "ner", "f1", {}) == 0.82
    assert _panel_value({}, "sparse", sys, "pos", "accuracy", {}) == 0.9
    mse = mse_system({"g3": 0.02})
    assert _panel_value({}, "pbfs", mse, "g3", "mse", {"mse": 0.04}) == pytest.approx(0.0008)


def test_paired_differences_in_the_papers_metric_and_scorer():
    """The claims compare in the paper's scorer: lenient span F1 (here strict - 3 points, and the
    lenient differences are their own), and a paper metric other than the primary one."""
    res = _seed_sweep()
    for i, pt in enumerate(res["sweep"]["points"]):  # make the lenient differences differ from strict
        if "hard" in pt["systems"]:
            pt["systems"]["hard"]["tasks"]["ner"]["all"]["test"]["f1_lenient"] -= 0.01 * (i + 1)
    res["paper"] = {"metrics": {"pos": ["accuracy"], "ner": ["f1"]}}
    strict = paired_differences(res)
    lenient = paired_differences(res, scorer="paper")
    get = {e["system"]: e for e in strict["against_reference"] if e["at"]["warmup"] == "mtw"}
    got = {e["system"]: e for e in lenient["against_reference"] if e["at"]["warmup"] == "mtw"}
    assert (
        get["hard"]["tasks"]["ner"]["metric"] == "f1"
        and got["hard"]["tasks"]["ner"]["metric"] == "f1_lenient"
    )
    # points 0, 2, 4 hold hard sharing: its lenient F1 is 1, 3, 5 points lower than strict - 3
    assert got["hard"]["tasks"]["ner"]["diffs"] == pytest.approx([-3.0, -6.0, -6.0])
    assert got["sparse"]["tasks"]["ner"]["diffs"] == get["sparse"]["tasks"]["ner"]["diffs"]
    table = results_table({**res, "experiment": "x"})
    assert "Paired differences in the paper's metric and scorer" in table and "ner Δ test f1_lenient" in table


def test_report_takes_another_reference_system(tmp_path, capsys):
    from sparseshare.cli import main

    run = tmp_path / "r"
    run.mkdir()
    (run / "results.json").write_text(json.dumps({**_seed_sweep(), "experiment": "x"}))
    assert main(["report", str(run), "--reference", "hard"]) == 0
    text = (run / "results.md").read_text()
    assert "| Sparse sharing | Hard sharing | 3 |" in text and "Each row against Hard sharing" in text
    assert main(["report", str(run), "--reference", "pbfs"]) == 2
    assert "no system 'pbfs'" in capsys.readouterr().err
