"""The one estimator contract: DipCatalog, DrgWeights and AuxTyping behave alike."""

from __future__ import annotations

import inspect

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from grouper import AuxTyping, DipCatalog, DrgWeights
from grouper.errors import NotFittedError, SettingsError
from grouper.estimator import Estimator
from grouper.settings import Choice, Num, Seq, check_settings

ESTIMATORS = [DipCatalog, DrgWeights, AuxTyping]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_every_setting_is_declared_with_a_field_kind(cls):
    assert issubclass(cls, Estimator)
    assert list(cls.SETTINGS) == list(inspect.signature(cls).parameters)
    cls().check_settings()  # the documented defaults pass their own checks


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_one_not_fitted_error_before_fit_or_read(cls, tmp_path):
    est = cls()
    assert not est.is_fitted
    for use in (lambda: est.to_parquet(tmp_path / "x.parquet"), lambda: est.to_csv(tmp_path / "x.csv")):
        with pytest.raises(NotFittedError, match=rf"{cls.__name__}: call fit\(\) or"):
            use()


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_an_unknown_setting_is_a_settings_error(cls):
    with pytest.raises(SettingsError, match="unknown setting 'nope'"):
        cls().set_params(nope=1)


def _weights() -> DrgWeights:
    h = pa.table(
        {"year": [2024] * 4, "drg": ["GB19", "GB19", "GB11", "GB11"], "total_cost": [1.0, 3.0, 4.0, 4.0]}
    )
    return DrgWeights(year_weights=(1,), trim="none", min_n=1).fit(h)


def test_writers_write_the_format_they_name_and_readers_read_it(tmp_path):
    est = _weights()
    as_parquet = est.to_parquet(tmp_path / "w.csv")  # the name says Parquet: Parquet it is
    assert pq.read_table(as_parquet).num_rows == est.weights_.num_rows
    as_csv = est.to_csv(tmp_path / "w.parquet")
    assert as_csv.read_bytes().startswith(b'"drg"') and (tmp_path / "w.params.toml").exists()
    for back in (DrgWeights.read_parquet(as_parquet), DrgWeights.read_csv(as_csv)):
        assert back.weights_.equals(est.weights_) and back.get_params() == est.get_params()
    assert est.to_parquet(tmp_path / "bare").suffix == ".parquet"  # a path without a suffix gets one


def test_apply_returns_an_arrow_table():
    rw = _weights().apply(pa.table({"drg": ["GB19", "XX99"]}))
    assert isinstance(rw, pa.Table) and rw.column_names == ["rw"]
    assert rw["rw"].to_pylist()[0] == pytest.approx(2 / 3) and rw["rw"].null_count == 1


def test_field_kinds_word_their_problems_as_the_policy_loader_does():
    with pytest.raises(SettingsError, match="X: a: must be ≥ 1, got 0") as info:
        check_settings("X", {"a": Num(lo=1, integer=True)}, {"a": 0})
    assert info.value.key == "a"
    assert Choice(("<", "<=")).problem("=<") == "'=<' is not one of <, <="
    assert Seq(Num(share=True), length=2).problem((0.1, 2)) == "a share must lie in 0–1, got 2"
