"""The experiment specification (qac/experiments.py): vocabulary, SNN settings, records, and
the workflow schema's enums checked against it."""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest

from qac import experiments as spec
from qac.align import POLICIES as ALIGN_POLICIES
from qac.evaluate import write_evaluation
from qac.experiments import Activation, Model, SNNSetting, record_fields, record_value
from qac.report._common import ReportInputError
from qac.report.collect import collect
from qac.workflow import SCHEMA, load_yaml

FIXTURES = Path(__file__).parent / "fixtures" / "report" / "eval"


# ----------------------------------------------------------------------------- schema
@pytest.fixture(scope="module")
def schema() -> dict:
    return load_yaml(SCHEMA.read_text())


def test_schema_enums_follow_the_spec(schema: dict) -> None:
    defs, props = schema["definitions"], schema["properties"]
    assert defs["dataset_id"]["enum"] == list(spec.DATASETS)
    assert defs["arch_id"]["enum"] == list(spec.ARCHITECTURES)
    assert defs["policy"]["enum"] == list(spec.POLICIES)
    cases = defs["grid"]["properties"]["cases"]["items"]
    assert (cases["minimum"], cases["maximum"]) == (min(spec.CASES), max(spec.CASES))
    assert list(props["datasets"]["properties"]) == list(spec.DATASETS)
    assert list(props["data_options"]["properties"]) == list(spec.DATASETS)
    assert list(props["widths"]["properties"]) == list(spec.ARCHITECTURES)
    names = props["train_overrides"]["propertyNames"]["anyOf"]  # a dataset, arch or act id
    assert names[0]["enum"] == [*spec.DATASETS, *spec.ARCHITECTURES]
    act = re.compile(names[1]["pattern"])
    quantized = [f"qac-c{c}" for c in spec.CASES] + ["qcfs-L2", "qcfs-L16"]
    assert all(act.match(a) and re.fullmatch(spec.ACT_PATTERN, a) for a in quantized)
    assert not any(act.match(a) for a in (spec.FLOAT_ACT, f"qac-c{max(spec.CASES) + 1}", "qcfs-L0"))
    # every grid an artifact reads is a configuration entry
    grids = set(props["experiments"]["properties"])
    assert {sel.grid for sel in spec.ARTIFACT_MODELS.values()} <= grids


def test_snakefile_wildcards_come_from_the_spec() -> None:
    text = (SCHEMA.parents[1] / "Snakefile").read_text()
    assert 'dataset="|".join(DATASETS)' in text and "act=ACT_PATTERN" in text


# ----------------------------------------------------------------------------- vocabulary
def test_policies_derive_from_the_align_registry() -> None:
    assert set(spec.POLICIES) <= set(ALIGN_POLICIES)
    assert spec.ALIGNMENT_POLICIES == ("repl+aver", "repl+trunc", "aver+trunc", "aver+aver")
    assert spec.ALL_AVER == "aver+aver+aver" and spec.ALL_AVER in spec.POLICIES
    assert spec.MAIN_POLICY in spec.ALIGNMENT_POLICIES


def test_activation_ids_round_trip() -> None:
    for text in ("qac-c1", "qac-c4", "qcfs-L2", "qcfs-L16"):
        act = Activation.parse(text)
        assert act.format() == text and Activation.parse(str(act)) == act
    assert Activation.parse("qac-c3").method == "QAC"
    assert Activation.parse("qcfs-L4").options() == {"name": "qcfs", "levels": 4}
    for bad in ("qac-c5", "qac-c0", "qcfs-L0", "relu4", "qcfs-L", "qac-c4x"):
        with pytest.raises(ValueError, match="activation"):
            Activation.parse(bad)
    assert spec.MAIN_ACT == "qac-c4"


def test_model_ids() -> None:
    m = Model.parse("imagenet/resnet18/qac-c4")
    assert m.path == "imagenet/resnet18/qac-c4" and m.builder == "resnet18_imagenet"
    assert Model.from_json(m.to_json()) == m
    with pytest.raises(ValueError, match="lacks"):
        Model.from_json({"dataset": "cifar10", "arch": "vgg16"})
    with pytest.raises(ValueError, match="<dataset>/<arch>/<act>"):
        Model.parse("cifar10/vgg16")


def test_artifacts() -> None:
    assert set(spec.ARTIFACT_MODELS) == set(spec.ARTIFACTS)
    assert spec.FIGURE_FILES["figs5_10"] == tuple(f"fig{i}" for i in range(5, 11))
    assert set(spec.RESULT_TABLE) == set(spec.DATASETS)


# ----------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    "text",
    ["aver+aver", "aver+aver,cal", "aver+aver+aver,f64", "aver+aver,k=3", "qcfs,T=8",
     "repl+trunc,v0=zero,cal", "aver+aver,k=2,v0=0.25,T=4,cal,f64"],
)  # fmt: skip
def test_setting_round_trip(text: str) -> None:
    st = SNNSetting.parse(text)
    assert st.format() == text
    assert SNNSetting.from_json(json.loads(json.dumps(st.to_json()))) == st


def test_setting_parse_normalises_and_rejects() -> None:
    assert SNNSetting.parse(" aver+aver , cal ,k=1") == SNNSetting("aver+aver", cal=True)
    assert SNNSetting.parse("aver+aver,v0=.5").format() == "aver+aver,v0=0.5"
    for bad, needle in [
        ("", "empty setting"),
        ("bogus", "bogus"),
        ("aver+aver,k=0", "must be >= 1"),
        ("aver+aver,T=x", "expected an integer"),
        ("aver+aver,speed=3", "unknown part 'speed=3'"),
        ("aver+aver,v0=hot", "v0 takes"),
    ]:
        with pytest.raises(ValueError, match=needle):
            SNNSetting.parse(bad)


def test_setting_of_run_uses_fields_then_string_then_old_fields() -> None:
    fields = SNNSetting("aver+aver", k=2).to_json()
    assert SNNSetting.of_run({"setting_fields": fields, "setting": "x"}).k == 2
    assert SNNSetting.of_run({"setting": "aver+aver,cal"}).cal
    old = SNNSetting.of_run({"policy": "repl+aver", "temporal_scale": 3, "calibrated": True})
    assert old == SNNSetting("repl+aver", k=3, cal=True)
    # a float64 model is evaluated in float64 whatever its setting says
    # a float64 model runs every setting in float64: its plain settings stay plain
    assert not SNNSetting.of_run({"setting": "aver+aver", "dtype": "float64"}).f64
    assert SNNSetting.of_run({"policy": "aver+aver", "dtype": "float64"}).f64  # legacy file
    with pytest.raises(ValueError, match="without setting"):
        SNNSetting.of_run({"snn_acc": 1.0})


def test_match_predicates() -> None:
    main = spec.Match("main", cal=True)
    assert main(SNNSetting("aver+aver", cal=True), "aver+aver")
    assert not main(SNNSetting("aver+aver", cal=True, f64=True), "aver+aver")
    assert not main(SNNSetting("aver+aver", k=2, cal=True), "aver+aver")
    beside = spec.Match(spec.ALL_AVER, not_main=True)
    assert beside(SNNSetting(spec.ALL_AVER), "aver+aver")
    assert not beside(SNNSetting(spec.ALL_AVER), spec.ALL_AVER)
    assert spec.EXACTNESS(SNNSetting(spec.ALL_AVER, f64=True), "aver+aver")


# ----------------------------------------------------------------------------- records
def test_record_fields_flag_infinity() -> None:
    out = record_fields(
        {"avg_timesteps": math.inf, "avg_bits": "inf", "x": -math.inf, "y": math.nan,
         "layers": [{"T": "inf", "layer": "a"}], "pairs": [["a", math.inf]], "ok": 2.0}
    )  # fmt: skip
    assert out["avg_timesteps"] is None and out["avg_timesteps_infinite"] is True
    assert out["avg_bits"] is None and out["avg_bits_infinite"] is True
    assert out["x"] is None and out["x_negative_infinite"] is True
    assert out["y"] is None and "y_infinite" not in out
    assert out["layers"] == [{"T": None, "T_infinite": True, "layer": "a"}]
    assert out["pairs"] == [["a", None]]
    json.dumps(out, allow_nan=False)
    assert record_value(out, "avg_timesteps") == math.inf
    assert record_value(out, "x") == -math.inf
    assert record_value(out, "ok") == 2.0
    assert record_value({"avg_bits": "inf"}, "avg_bits") == "inf"  # older records
    with pytest.raises(KeyError):
        record_value(out, "missing")


def test_write_evaluation_record(tmp_path: Path) -> None:
    settings = [SNNSetting("aver+aver"), SNNSetting("aver+aver", cal=True)]
    runs = [{"snn_acc": 50.0, "avg_timesteps": 4.0}, {"snn_acc": 60.0, "avg_timesteps": 4.0}]
    result = {"ann": {"ann_acc": 70.0, "avg_timesteps": math.inf}, "snn": runs}
    out = tmp_path / "eval.json"
    model = Model("cifar10", "resnet20", "qac-c3")
    write_evaluation(out, result, settings, model=model)
    data = json.loads(out.read_text())
    assert data["format"] == spec.RECORD_FORMAT
    assert data["model"] == {"dataset": "cifar10", "arch": "resnet20", "act": "qac-c3"}
    assert data["ann"]["avg_timesteps"] is None and data["ann"]["avg_timesteps_infinite"]
    assert [r["setting"] for r in data["snn"]] == ["aver+aver", "aver+aver,cal"]
    assert data["snn"][1]["setting_fields"]["cal"] is True
    assert [SNNSetting.of_run(r) for r in data["snn"]] == settings
    assert result["ann"]["avg_timesteps"] == math.inf  # the caller's dict is left alone
    with pytest.raises(ValueError, match="settings"):
        write_evaluation(out, result, settings[:1])


# ----------------------------------------------------------------------------- collect
def test_collect_reads_the_model_from_the_record(tmp_path: Path) -> None:
    src = FIXTURES / "cifar10" / "vgg16" / "qac-c4.json"
    anywhere = tmp_path / "some-name.json"
    shutil.copy(src, anywhere)
    df = collect([anywhere], "cpu")
    assert set(df["architecture"]) == {"vgg16"} and set(df["case"]) == {4}
    wrong = tmp_path / "eval" / "cifar10" / "resnet20" / "qac-c4.json"
    wrong.parent.mkdir(parents=True)
    shutil.copy(src, wrong)
    with pytest.raises(ReportInputError, match="the path says cifar10/resnet20/qac-c4"):
        collect([wrong], "cpu")
    assert set(collect([wrong], "cpu", check_spec=False)["architecture"]) == {"vgg16"}


def test_collect_falls_back_to_the_path_for_old_records() -> None:
    old = FIXTURES / "cifar10" / "resnet20" / "qac-c4.json"  # an older-format record
    assert "model" not in json.loads(old.read_text())
    with pytest.warns(DeprecationWarning, match="read from the path"):
        df = collect([old], "cpu")
    assert set(df["architecture"]) == {"resnet20"}


def test_collect_case3_infinity_from_flags() -> None:
    c3 = FIXTURES / "cifar10" / "resnet20" / "qac-c3.json"
    assert json.loads(c3.read_text())["ann"]["avg_timesteps_infinite"] is True
    df = collect([c3], "cpu")
    t = df[(df["table"] == "fig2") & (df["quantity"] == "avg_timesteps")]["value"]
    assert len(t) == 1 and math.isinf(t.iloc[0])
