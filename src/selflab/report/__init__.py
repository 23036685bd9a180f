"""The HTML report of a run: what a person looks at to decide whether a loop worked."""

from selflab.report.html import write_report

__all__ = ["write_report"]
