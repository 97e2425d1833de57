"""Canonical discharge schema (出院病例 / 结算清单数据): one row per case (docs/records.md §6)."""

from __future__ import annotations

import pyarrow as pa

#: Optional fee breakdown of the 结算清单 (医疗收费项目类别 ``med_chrgitm_type`` 01 床位费 … 14 其他费, docs/records.md §3),
#: yuan; ``fee_05`` is 治疗费, ``fee_09`` + ``fee_10`` + ``fee_11`` the drug fees. Header names: column_aliases.csv.
FEE_COLUMNS = tuple(f"fee_{k:02d}" for k in range(1, 15))

#: Canonical columns, in output order. Readers map aliases onto these names and cast to these types.
DISCHARGE_SCHEMA = pa.schema(
    [
        pa.field("case_id", pa.string()),
        pa.field("patient_id", pa.string()),
        pa.field("hospital_id", pa.string()),
        pa.field("insurance_type", pa.string()),
        pa.field("sex", pa.int8()),
        pa.field("sex_text", pa.string()),
        pa.field("age_years", pa.int16()),
        pa.field("age_days", pa.int32()),
        pa.field("birth_weight_g", pa.int32()),
        pa.field("admission_weight_g", pa.int32()),
        pa.field("admission_date", pa.date32()),
        pa.field("discharge_date", pa.date32()),
        pa.field("los_days", pa.int32()),
        pa.field("discharge_mode", pa.int8()),
        pa.field("department", pa.string()),
        pa.field("attending_doctor", pa.string()),
        pa.field("principal_dx", pa.string()),
        pa.field("other_dx", pa.list_(pa.string())),
        pa.field("principal_proc", pa.string()),
        pa.field("other_procs", pa.list_(pa.string())),
        pa.field("proc_dates", pa.list_(pa.date32())),
        pa.field("icu_hours", pa.float64()),
        pa.field("vent_hours", pa.float64()),
        pa.field("total_cost", pa.float64()),
        pa.field("fund_paid", pa.float64()),
        pa.field("patient_paid", pa.float64()),
        pa.field("payment_method", pa.string()),
        *(pa.field(name, pa.float64()) for name in FEE_COLUMNS),
    ]
)

#: Columns a file must provide (directly or through an alias) to be grouped.
REQUIRED_COLUMNS = ("case_id", "principal_dx")

#: Columns that keep another column's value as written in a text source (no trimming, no value map; null when the
#: source column is numeric or absent): a scheme that accepts only some spellings (CHS-DRG 2.0 takes sex "1" and
#: "2" only, not "男" or "1.0") decides on these. Readers fill them from the other column's header.
AS_WRITTEN = {"sex_text": "sex"}

#: Columns that hold lists (`|`-separated in flat files, or numbered columns). ``proc_dates`` (手术操作日期, optional):
#: one date per procedure, the principal procedure's first (when there is one), then the other procedures' in order.
LIST_COLUMNS = ("other_dx", "other_procs", "proc_dates")
