"""The HTML report of any run: what a person looks at to decide whether it worked."""

from selflab.report.html import render, write_report

__all__ = ["render", "write_report"]
