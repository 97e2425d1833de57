"""Hospital self-audit (医院自查): QC edits, supervision flags, indicators, 盈亏, the insurer comparison and the
report a 医保办 reads (docs/audit.md, docs/records.md §5).

:func:`audit` returns the tables (:func:`audit_batches`: the same over batches, with bounded memory); :func:`payment.audit.report.write_audit` writes ``audit.xlsx``, the tables as
Parquet and ``report.html``.
"""

from payment.audit.core import Audit, audit, audit_batches
from payment.audit.insurer import read_insurer
from payment.audit.lists import QcLists
from payment.audit.settings import AuditSettings

__all__ = ["Audit", "AuditSettings", "QcLists", "audit", "audit_batches", "read_insurer"]
