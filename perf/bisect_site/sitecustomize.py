"""Loaded by every process of a :mod:`perf.bisect` run (it puts this folder on PYTHONPATH): turns
off the features named in ZMQTRADE_BISECT_OFF before the component starts. Nothing else uses it."""
import os
import runpy
import sys

OFF = set(filter(None, os.environ.get("ZMQTRADE_BISECT_OFF", "").split(",")))


def _patch() -> None:
    import gc

    from zmqtrade import journal, metrics, orderlog, risk, seqcheck, service

    if "histograms" in OFF:
        metrics.Histogram.record = lambda self, ns: None
        metrics.Rows.record = lambda self, row: None
    if "journal" in OFF:
        journal.Journal.append_lines = lambda self, lines: None
    if "risk" in OFF:
        risk.RiskBook.take = lambda self, order, now_ns: None
    if "sequence" in OFF:
        seqcheck.SeqCheck.see = lambda self, first, n=1: 0
    if "logs" in OFF:
        orderlog.OrderLog.format = lambda self: self.lines.clear()
    if "progress" in OFF:  # heartbeats only: the launcher still sees the process alive
        orig = service.Service.report_progress

        def heartbeat_only(self):
            self._next_progress = float("inf")
            orig(self)
        service.Service.report_progress = heartbeat_only
    if "gc" in OFF:
        gc.disable()  # the collect and freeze at start-up stay: they find nothing more to do


def _run_module_as_main(mod_name: str, alter_argv: bool = True):  # noqa: ANN202
    """Run a zmqtrade component as an imported module, so the patches reach its classes too."""
    if not mod_name.startswith("zmqtrade.") or not OFF:
        return _orig(mod_name, alter_argv)
    import importlib

    module = importlib.import_module(mod_name)
    _patch()
    if alter_argv:
        sys.argv[0] = module.__file__
    sys.exit(module.main())


_orig = runpy._run_module_as_main
runpy._run_module_as_main = _run_module_as_main
