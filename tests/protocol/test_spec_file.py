"""Spec files: valid examples load; every mistake names the file, line and key."""

from pathlib import Path

import pytest
from fedsurv.protocol.errors import SpecError
from fedsurv.protocol.spec_file import load_spec, parse_spec, spec_warnings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_model_study_example_loads() -> None:
    spec = load_spec(EXAMPLES / "model_study.yaml")
    assert spec.grid.bin_days == 1 and "os" in spec.survival and spec.ci.proportion_method == "wald"
    assert len(spec.sha256()) == 64


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("survival: [os]\ngrid:\n  bin_days: 0\n", "<spec>:3: grid.bin_days"),
        ("survival: [os, pfs]\n", "<spec>:1: survival.1"),
        ("survival: [os]\nlandmarks: [-5]\n", "landmarks"),
        ("survival: [os]\ncolour: red\n", "<spec>:2: colour: Extra inputs are not permitted"),
        ("survival: [os]\nlandmark: [365]\n", "landmark: Extra inputs are not permitted; "
                                                "did you mean 'landmarks'?"),
        ("survival: [os]\ngrid: {bin_day: 7}\n", "grid.bin_day: Extra inputs are not "
                                                  "permitted; did you mean 'bin_days'?"),
        ("survival: [os]\ncox: [{name: m, endpont: os, covariates: [age]}]\n",
         "did you mean 'endpoint'?"),
        ("title: nothing\n", "asks for nothing"),
        ("survival: [os\n", "not valid YAML"),
        ("- os\n", "a spec is a mapping"),
        ("survival: [os]\nci:\n  level: 1.5\n", "<spec>:3: ci.level"),
        ("survival: [os]\nsite_stratified_logrank: true\n", "needs strata"),
        ("survival: [os]\nstrata: {column: g, levels: [a, a]}\n", "unique"),
    ],
)
def test_spec_errors_are_precise(text: str, fragment: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text)
    assert fragment in str(caught.value)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read spec file"):
        load_spec(tmp_path / "nope.yaml")


def test_unknown_key_without_a_close_name_gets_no_guess() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec("survival: [os]\ncolour: red\n")
    assert "did you mean" not in str(caught.value)


def test_landmark_off_the_grid_is_a_warning() -> None:
    spec = parse_spec("survival: [os]\ngrid: {bin_days: 30}\nlandmarks: [360, 365]\n")
    assert spec_warnings(spec) == [
        "landmarks: 365 is not a multiple of grid.bin_days=30: it is read at day 360 "
        "(the last bin end at or before it)"
    ]
    assert spec_warnings(parse_spec("survival: [os]\nlandmarks: [365]\n")) == []


def test_every_spec_key_is_in_the_docs_key_table() -> None:
    """docs/spec.md's key table names every top-level key of the spec (issue 15: `cox` was
    missing)."""
    from fedsurv.protocol.spec import AnalysisSpec

    table = (EXAMPLES.parent / "docs" / "spec.md").read_text(encoding="utf-8")
    documented = {line.split("`")[1].split(".")[0] for line in table.splitlines()
                  if line.startswith("| `")}
    assert set(AnalysisSpec.model_fields) <= documented, (
        set(AnalysisSpec.model_fields) - documented)
