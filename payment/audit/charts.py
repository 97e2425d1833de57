"""The report's charts as inline SVG (matplotlib, ``svg.fonttype = "none"``: Chinese labels stay text)."""

from __future__ import annotations

import io
import logging
import re
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pyarrow as pa
from matplotlib.figure import Figure

__all__ = ["flags_chart", "gain_loss_chart", "index_chart", "volume_chart"]

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "drgdip-audit",  # fixed ids: a rerun writes the same bytes
    "font.family": ["sans-serif"],
    "font.sans-serif": [
        "Noto Sans CJK SC",
        "WenQuanYi Zen Hei",
        "Microsoft YaHei",
        "PingFang SC",
        "SimHei",
        "DejaVu Sans",
    ],
    "axes.unicode_minus": False,
    "font.size": 10,
}
_LOSS, _GAIN, _BAR = "#c0392b", "#27ae60", "#2e86c1"


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # a glyph the layout font lacks: the browser draws it with its own font
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    # the browser picks the Chinese font: name the whole family list, not the layout font matplotlib found
    return re.sub(
        r"font-family:[^;\"]*",
        "font-family: 'Noto Sans CJK SC','Microsoft YaHei','PingFang SC',sans-serif",
        svg,
    )


def _figure(width: float, height: float) -> Figure:
    logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)
    return Figure(figsize=(width, height), layout="constrained")


def gain_loss_chart(groups: pa.Table, top: int = 10) -> str | None:
    """盈亏 by group: the ``top`` largest losses and gains (horizontal bars)."""
    g = groups.to_pandas()
    g = g[g["gain_loss"].notna()]
    if g.empty:
        return None
    g = g.sort_values(["gain_loss", "group"])
    pick = g.head(top)
    gains = g[g["gain_loss"] > 0].tail(top)
    pick = pd.concat([pick, gains[~gains["group"].isin(pick["group"])]]).sort_values(["gain_loss", "group"])
    with matplotlib.rc_context(_RC):
        fig = _figure(8, 0.3 * len(pick) + 1.2)
        ax = fig.subplots()
        values = pick["gain_loss"].to_numpy() / 10_000
        ax.barh(np.arange(len(pick)), values, color=np.where(values < 0, _LOSS, _GAIN))
        ax.set_yticks(
            np.arange(len(pick)), [f"{a}（{n}例）" for a, n in zip(pick["group"], pick["cases"], strict=True)]
        )
        ax.axvline(0, color="#555", linewidth=0.8)
        ax.set_xlabel("盈亏（万元）= 预计支付 − 医疗费用")
        ax.set_title(f"病组盈亏：亏损最多与盈余最多的各{top}个病组")
        return _svg(fig)


def _names(d) -> list[str]:
    """Department labels; with several hospitals, ``hospital·department``."""
    if d["hospital_id"].nunique() > 1:
        return [f"{h}·{x}" for h, x in zip(d["hospital_id"], d["department"], strict=True)]
    return [str(x) for x in d["department"]]


def index_chart(departments: pa.Table) -> str | None:
    """费用消耗指数 against 时间消耗指数 by department (point size: cases)."""
    d = departments.to_pandas()
    d = d[d["cost_index"].notna() & d["time_index"].notna()]
    if d.empty:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(7, 5)
        ax = fig.subplots()
        size = 20 + 300 * d["cases"].to_numpy() / max(d["cases"].max(), 1)
        ax.scatter(d["time_index"], d["cost_index"], s=size, alpha=0.6, color=_BAR, edgecolor="#1b4f72")
        for _, r in d.nlargest(12, "cases").iterrows():
            ax.annotate(
                str(r["department"]),
                (r["time_index"], r["cost_index"]),
                fontsize=8,
                xytext=(4, 2),
                textcoords="offset points",
            )
        ax.axhline(1, color="#888", linewidth=0.8, linestyle="--")
        ax.axvline(1, color="#888", linewidth=0.8, linestyle="--")
        ax.set_xlabel("时间消耗指数（>1：住院日长于区域同病组）")
        ax.set_ylabel("费用消耗指数（>1：费用高于区域同病组）")
        ax.set_title("科室费用消耗指数与时间消耗指数（点大小 = 病例数）")
        return _svg(fig)


def volume_chart(departments: pa.Table, top: int = 20) -> str | None:
    """Cases (bars) and CMI (points) of the ``top`` departments by cases."""
    d = departments.to_pandas()
    if d.empty:
        return None
    d = d.sort_values(["cases", "department"], ascending=[False, True]).head(top)
    labels = _names(d)
    with matplotlib.rc_context(_RC):
        fig = _figure(8, 4.2)
        ax = fig.subplots()
        x = np.arange(len(d))
        ax.bar(x, d["cases"], color=_BAR, label="病例数")
        ax.set_xticks(x, labels, rotation=45, ha="right")
        ax.set_ylabel("病例数")
        ax2 = ax.twinx()
        ax2.plot(x, d["cmi"], "o", color=_LOSS, label="CMI")
        ax2.set_ylabel("CMI")
        ax.set_title(f"病例数与CMI：病例最多的{len(d)}个科室")
        return _svg(fig)


def flags_chart(counts: list[tuple[str, int]]) -> str | None:
    """Flagged findings by kind (horizontal bars)."""
    if not counts:
        return None
    with matplotlib.rc_context(_RC):
        fig = _figure(7, 0.35 * len(counts) + 1.2)
        ax = fig.subplots()
        y = np.arange(len(counts))
        ax.barh(y, [c for _, c in counts], color=_BAR)
        ax.set_yticks(y, [k for k, _ in counts])
        ax.invert_yaxis()
        for i, (_, c) in enumerate(counts):
            ax.annotate(f"{c:,}", (c, i), xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)
        ax.set_xlabel("条数")
        ax.set_title("疑点与质控问题（按类型）")
        return _svg(fig)
