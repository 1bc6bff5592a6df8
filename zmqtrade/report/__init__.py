"""What a run leaves for people and tools: report.json and its files (:mod:`.build`), the printed
summary (:mod:`.summary`), report.html (:mod:`.html`, its plots in :mod:`.figures`), the live view
(:mod:`.live`), the manifest of what ran (:mod:`.manifest`) and comparisons of runs (:mod:`.compare`)."""
from zmqtrade.report.build import TOTALS, build, write
from zmqtrade.report.summary import FEW, percentile_cell, summary

__all__ = ["FEW", "TOTALS", "build", "percentile_cell", "summary", "write"]
