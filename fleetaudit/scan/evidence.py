"""Each nmap process's raw XML, kept beside the results as evidence: DIR/nmap/<name>.xml.

Written with the rest of the report, as one run (fleetaudit.report.write): this module
only keeps the old names.
"""

from __future__ import annotations

from fleetaudit.report.write import EVIDENCE_DIR, write_evidence

__all__ = ["EVIDENCE_DIR", "write_nmap_evidence"]

write_nmap_evidence = write_evidence
