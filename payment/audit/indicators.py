"""Indicators (DRG/DIP 绩效指标) per hospital, department, attending doctor and group, docs/audit.md §1.

Cases, 入组率, 组数, total weight, CMI, 费用消耗指数 / 时间消耗指数 (against the region: all cases of the run), 低风险组
死亡率, mean cost and LOS against the region's and the group standard's for the same case mix, drug and
consumable shares when the fee breakdown is present, and 盈亏 (expected payment − cost) when payment is known.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["group_table", "indicator_table"]


def _frame(c: dict[str, np.ndarray], focus: np.ndarray) -> pd.DataFrame:
    cols = [
        "group",
        "grouped",
        "weight",
        "cost",
        "los",
        "dead",
        "low_risk",
        "expected",
        "std_cost",
        "std_los",
    ]
    df = pd.DataFrame({k: c[k] for k in cols})
    for k in ("drug", "consumable"):
        if k in c:
            df[k] = c[k]
    return df[focus]


def _region_means(c: dict[str, np.ndarray]) -> pd.DataFrame:
    """Mean cost and LOS per group over every grouped case of the run (the region R)."""
    df = pd.DataFrame({"group": c["group"], "cost": c["cost"], "los": c["los"]})[c["grouped"]]
    return df.groupby("group", sort=True).agg(r_cost=("cost", "mean"), r_los=("los", "mean"))


def indicator_table(
    c: dict[str, np.ndarray], keys: dict[str, np.ndarray], focus: np.ndarray, *, relative_cmi: bool
) -> pa.Table:
    """One row per combination of ``keys`` (e.g. ``hospital_id``, ``department``) among the ``focus`` cases.

    ``relative_cmi``: DIP's CMI is the mean score per case ÷ the region's mean score per case (docs/audit.md §1);
    CHS-DRG's is the mean RW.

    Examples
    --------
    Two groups; the hospital's group A costs 1.5 × the region's mean and B the same (cost index
    (2 × 1.5 + 1 × 1) / 3 = 1.333); CMI (1 + 1 + 2) / 3:

    >>> c = {"group": np.array(["A", "A", "B", "A", "B"]), "grouped": np.ones(5, bool),
    ...      "weight": np.array([1., 1, 2, 1, 2]), "cost": np.array([150., 150, 200, 0, 200]),
    ...      "los": np.array([5., 5, 8, 5, 8]), "dead": np.zeros(5, bool), "low_risk": np.zeros(5, bool),
    ...      "expected": np.full(5, np.nan), "std_cost": np.full(5, np.nan), "std_los": np.full(5, np.nan)}
    >>> t = indicator_table(c, {"hospital_id": np.array(["H", "H", "H", "X", "X"])}, np.ones(5, bool),
    ...                     relative_cmi=False).to_pylist()
    >>> round(t[0]["cost_index"], 3), round(t[0]["cmi"], 3), t[0]["n_groups"]
    (1.333, 1.333, 2)
    """
    df = _frame(c, focus)
    names = list(keys)
    for k, v in keys.items():
        df[k] = pd.Series(v[focus], index=df.index).fillna("（未填）")
    means = _region_means(c)
    g = df[df["grouped"]].join(means, on="group")
    g_key = g.groupby([*names, "group"], sort=False, observed=True)
    per = g_key.agg(
        n=("cost", "size"),
        cost=("cost", "mean"),
        los=("los", "mean"),
        r_cost=("r_cost", "first"),
        r_los=("r_los", "first"),
        s_cost=("std_cost", "first"),
        s_los=("std_los", "first"),
    )
    per = per.reset_index()
    per["ci"] = per["n"] * per["cost"] / per["r_cost"]
    per["ti"] = per["n"] * per["los"] / per["r_los"]
    per["rc"] = per["n"] * per["r_cost"]
    per["rl"] = per["n"] * per["r_los"]
    ok_s = per["s_cost"].notna()
    per["sc"] = np.where(ok_s, per["n"] * per["s_cost"], 0.0)
    per["sn"] = np.where(ok_s, per["n"], 0)
    ok_l = per["s_los"].notna()
    per["sl"] = np.where(ok_l, per["n"] * per["s_los"], 0.0)
    per["sln"] = np.where(ok_l, per["n"], 0)
    mix = per.groupby(names, sort=True).agg(
        n_groups=("group", "nunique"),
        ci=("ci", "sum"),
        ti=("ti", "sum"),
        rc=("rc", "sum"),
        rl=("rl", "sum"),
        mix_n=("n", "sum"),
        sc=("sc", "sum"),
        sn=("sn", "sum"),
        sl=("sl", "sum"),
        sln=("sln", "sum"),
    )
    df["w"] = np.where(df["grouped"], df["weight"], 0.0)
    df["lr_dead"] = df["low_risk"] & df["dead"] & df["grouped"]
    df["lr_case"] = df["low_risk"] & df["grouped"]
    paid = df["expected"].notna()
    df["exp"] = np.where(paid, df["expected"], 0.0)
    df["exp_cost"] = np.where(paid, df["cost"], 0.0)
    df["paid"] = paid
    agg = {
        "cases": ("cost", "size"),
        "grouped_cases": ("grouped", "sum"),
        "total_weight": ("w", "sum"),
        "mean_cost": ("cost", "mean"),
        "mean_los": ("los", "mean"),
        "low_risk_cases": ("lr_case", "sum"),
        "low_risk_deaths": ("lr_dead", "sum"),
        "paid_cases": ("paid", "sum"),
        "expected_payment": ("exp", "sum"),
        "paid_cost": ("exp_cost", "sum"),
        "deaths": ("dead", "sum"),
    }
    for k in ("drug", "consumable"):
        if k in df:
            agg[k] = (k, "sum")
    agg["cost_sum"] = ("cost", "sum")
    out = df.groupby(names, sort=True).agg(**agg).join(mix)
    out["grouping_rate"] = out["grouped_cases"] / out["cases"]
    out["n_groups"] = out["n_groups"].fillna(0).astype(np.int64)
    mean_w = out["total_weight"] / out["grouped_cases"].where(out["grouped_cases"] > 0)
    if relative_cmi:
        region_mean = (
            np.nanmean(np.where(c["grouped"], c["weight"], np.nan)) if c["grouped"].any() else np.nan
        )
        out["cmi"] = mean_w / region_mean
    else:
        out["cmi"] = mean_w
    out["cost_index"] = out["ci"] / out["mix_n"]
    out["time_index"] = out["ti"] / out["mix_n"]
    out["region_mean_cost"] = out["rc"] / out["mix_n"]
    out["region_mean_los"] = out["rl"] / out["mix_n"]
    out["standard_mean_cost"] = out["sc"] / out["sn"].where(out["sn"] > 0)
    out["standard_mean_los"] = out["sl"] / out["sln"].where(out["sln"] > 0)
    out["low_risk_mortality"] = out["low_risk_deaths"] / out["low_risk_cases"].where(
        out["low_risk_cases"] > 0
    )
    out["gain_loss"] = np.where(out["paid_cases"] > 0, out["expected_payment"] - out["paid_cost"], np.nan)
    out.loc[out["paid_cases"] == 0, ["expected_payment", "paid_cost"]] = np.nan
    for k in ("drug", "consumable"):
        if k in out:
            out[f"{k}_share"] = out[k] / out["cost_sum"]
    columns = [
        "cases", "grouped_cases", "grouping_rate", "n_groups", "total_weight", "cmi", "cost_index", "time_index",
        "low_risk_cases", "low_risk_deaths", "low_risk_mortality", "deaths", "mean_cost", "region_mean_cost",
        "standard_mean_cost", "mean_los", "region_mean_los", "standard_mean_los",
        *[f"{k}_share" for k in ("drug", "consumable") if k in out],
        "paid_cases", "expected_payment", "paid_cost", "gain_loss",
    ]  # fmt: skip
    out = out.reset_index()[[*names, *columns]]
    for col in ("cases", "grouped_cases", "low_risk_cases", "low_risk_deaths", "deaths", "paid_cases"):
        out[col] = out[col].astype(np.int64)
    return pa.Table.from_pandas(out, preserve_index=False)


def group_table(c: dict[str, np.ndarray], focus: np.ndarray, risk_of_group: dict[str, str]) -> pa.Table:
    """One row per group of the ``focus`` cases: volume, weight, cost and LOS against the region and the
    standard, deaths and risk class, and 盈亏 (sorted by gain_loss, largest loss first, when payment is known)."""
    df = _frame(c, focus)
    df = df[df["grouped"]]
    means = _region_means(c)
    paid = df["expected"].notna()
    df = df.assign(
        exp=np.where(paid, df["expected"], 0.0), exp_cost=np.where(paid, df["cost"], 0.0), paid=paid
    )
    out = (
        df.groupby("group", sort=True)
        .agg(
            cases=("cost", "size"),
            weight=("weight", "first"),
            mean_cost=("cost", "mean"),
            mean_los=("los", "mean"),
            standard_cost=("std_cost", "first"),
            standard_los=("std_los", "first"),
            deaths=("dead", "sum"),
            paid_cases=("paid", "sum"),
            expected_payment=("exp", "sum"),
            paid_cost=("exp_cost", "sum"),
        )
        .join(means)
    )
    out = out.rename(columns={"r_cost": "region_mean_cost", "r_los": "region_mean_los"})
    out["mortality"] = out["deaths"] / out["cases"]
    out["risk_class"] = [risk_of_group.get(g, "unclassed") for g in out.index]
    out["gain_loss"] = np.where(out["paid_cases"] > 0, out["expected_payment"] - out["paid_cost"], np.nan)
    out.loc[out["paid_cases"] == 0, ["expected_payment", "paid_cost"]] = np.nan
    out["gain_loss_per_case"] = out["gain_loss"] / out["paid_cases"].where(out["paid_cases"] > 0)
    out = out.reset_index()
    out = out.sort_values(["gain_loss", "group"], na_position="last", kind="stable")
    cols = ["group", "cases", "weight", "mean_cost", "region_mean_cost", "standard_cost", "mean_los",
            "region_mean_los", "standard_los", "deaths", "mortality", "risk_class", "paid_cases",
            "expected_payment", "paid_cost", "gain_loss", "gain_loss_per_case"]  # fmt: skip
    out = out[cols]
    for col in ("cases", "deaths", "paid_cases"):
        out[col] = out[col].astype(np.int64)
    return pa.Table.from_pandas(out, preserve_index=False)
