"""Loaded by every process of a :mod:`perf.tail` run (it puts this folder on PYTHONPATH): the
strategy keeps every tick-driven order's stamps, and each process the spans of its periodic work,
written when it exits. Nothing else uses it.

Spans are (start, end) on CLOCK_MONOTONIC, the clock the orders are stamped with; work that took
less than MIN_SPAN_NS is left out (the calls that found nothing due)."""
import atexit
import functools
import gc
import importlib.abc
import importlib.util
import json
import os
import sys
import time
from array import array

OUT = os.environ.get("ZMQTRADE_TAIL_DIR")
MIN_SPAN_NS = 10_000
_now = time.monotonic_ns
_spans: dict[str, array] = {}
_orders = array("q")  # per order: tick, book, decide, send, om received, om replied, ack (ns)


def _span(label: str, start: int, end: int) -> None:
    if end - start >= MIN_SPAN_NS:
        _spans.setdefault(label, array("q")).extend((start, end))


def _timed(owner: type, name: str, label: str) -> None:
    f = getattr(owner, name)

    @functools.wraps(f)  # keeps what a decorator hung on the function (psutil's caches do)
    def timed(*a, **k):  # noqa: ANN002, ANN003, ANN202
        start = _now()
        try:
            return f(*a, **k)
        finally:
            _span(label, start, _now())
    setattr(owner, name, timed)


def _collections(phase: str, info: dict) -> None:
    if phase == "start":
        _collections.start = _now()  # type: ignore[attr-defined]
    else:
        _span(f"gc gen {info['generation']}", _collections.start, _now())  # type: ignore[attr-defined]


def _write(kind: str) -> None:
    with open(os.path.join(OUT, f"{kind}.{os.getpid()}.json"), "w") as fh:
        json.dump({"kind": kind, "spans": {k: v.tolist() for k, v in _spans.items()}, "orders": _orders.tolist()}, fh)


def _component(runner) -> None:  # noqa: ANN001
    serve = runner.serve

    def traced(cls, argv=None):  # noqa: ANN001, ANN202
        from zmqtrade import metrics, service
        kind = cls.kind
        _timed(cls if "report_progress" in cls.__dict__ else service.Service, "report_progress", f"{kind} heartbeat")
        gc.callbacks.append(_collections)
        if kind == "strategy":
            record = cls.record_hops

            def record_hops(self, o, r, ack_ns):  # noqa: ANN001, ANN202
                _orders.extend((o.tick_ts, o.book_ts, o.decide_ts, o.send_ts, r.recv_ts, r.ts_ns, ack_ns))
                return record(self, o, r, ack_ns)
            cls.record_hops = record_hops
            _timed(metrics.Rows, "flush", "strategy histogram bins")
        elif kind == "ordermanager":
            _timed(cls, "_booked", "order manager ledger booking")
        elif kind == "gateway":
            from zmqtrade import feeds
            _timed(feeds.PriceFeed, "prepare", "gateway block making")
            _timed(cls, "service_publishers", "gateway publishers serviced")
        atexit.register(_write, kind)
        return serve(cls, argv)
    runner.serve = traced


def _launcher(child) -> None:  # noqa: ANN001
    _timed(child.Child, "sample", "launcher psutil sample")
    atexit.register(_write, "launcher")


_HOOKS = {"zmqtrade.runner": _component, "zmqtrade.launch.child": _launcher}


class _Hook(importlib.abc.MetaPathFinder):
    """Patches a module right after it is first imported."""

    def find_spec(self, name, path, target=None):  # noqa: ANN001, ANN201
        hook = _HOOKS.pop(name, None)
        if hook is None:
            return None
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module

        def exec_module(module):  # noqa: ANN001, ANN202
            run(module)
            hook(module)
        spec.loader.exec_module = exec_module
        return spec


if OUT:
    sys.meta_path.insert(0, _Hook())
