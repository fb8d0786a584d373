"""The technical report of a run: one self-contained HTML document (and its PDF) that a reader
opens offline, drawn from the workspace's files as the stages left them.

- sources.py: the run's files read as untrusted input (missing or malformed: a gap, not a crash);
- rows.py: rows of the tables, from metrics dicts and tables;
- figures.py: matplotlib figures as PNG data: URIs;
- examples.py: a bounded number of example images, read one by one from their shards;
- sections.py, outcomes.py: the sections; blocks.py: what they are made of;
- document.py: the template, the PDF, the code version.
"""

from artsim.report.document import ReportSettings, code_version, pdf_available, render_html, write_report

__all__ = ["ReportSettings", "code_version", "pdf_available", "render_html", "write_report"]
