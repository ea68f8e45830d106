"""``curricula analyze``: moved to ``curricula.report.analysis``; this module re-exports it so existing imports
(``from curricula.analysis import analyze_run, format_report``) keep working."""

from curricula.report.analysis import *  # noqa: F401,F403
from curricula.report.analysis import __all__  # noqa: F401
