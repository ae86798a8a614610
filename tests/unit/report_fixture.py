"""A certification report (projections/competency/reports.py) for the report
tests: several kinds of unit, Vietnamese names, empty values, quotes and
commas, both statuses and an erased learner.  The English files it gives are
kept in report_snapshots/ as the builders wrote them before reports could be
written in Vietnamese (main at 4a60177); they must stay byte for byte."""

from __future__ import annotations

from projections.competency.reports import LearnerRow, Report, SummaryRow

REPORT = Report(
    program="https://example.org/programs/p", program_version="2025.1", unit="mic", by="agency", position=42,
    roster_as_of="2026-04-13T10:05:00.000000Z",
    summary=(
        SummaryRow("mic", "Bộ Thông tin và Truyền thông", "ministry", None, True, 10, 3, 0.3, 0.4, "2025-12-31", 4, 1),
        SummaryRow("mic-a", 'Cục "Bắc", phía bắc', "agency", "mic", True, 7, 3, 3 / 7, 0.4, "2025-12-31", 3, 0),
        SummaryRow("mic-b", "Agency B", "agency", "mic", True, 0, 0, None, None, None, None, None),
        SummaryRow("mic-u", "Văn phòng", "unit", "mic", False, 3, 0, 0.0, 0.5, None, 2, 2),
    ),
    not_certified=(
        LearnerRow("mbox:mailto:a@x.org", "mic-a-1", "Phòng 1", "mic-a", "in_progress",
                   "1.1 (needs CB2): best score 0.65 < mastery score 0.70"),
        LearnerRow("mbox:mailto:b@x.org", "mic-a-1", "Phòng 1", "mic-a", "not_started",
                   "1.1 (needs CB2): no evidence; 4.2 (needs CB1): no evidence"),
        LearnerRow("(erased)", "mic-u", "Văn phòng", None, "not_started", "1.1 (needs CB2): no evidence",
                   "account:https://lrs.invalid/pseudonym|" + "b" * 32),
    ),
)
