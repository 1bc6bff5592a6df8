"""Launchers for a stack spread over hosts: one per host (``--host NAME``), one of them the lead.

The lead (the gateway's host, or ``lead:`` / ``--lead``) runs the phases of a one-host run
across every host: a start level begins everywhere only once the previous one is ready on all
hosts (so bound ports travel to the hosts that connect to them), streaming starts when all
are ready, and the stop stages run in order across hosts: the gateway first, the order
manager last, wherever they are. Each other host's launcher (a peer) starts, supervises,
restarts and stops its own processes, as the lead asks, writes its own run directory, and
sends its report to the lead, which writes the combined one.

A peer measures its clock's offset from the lead's when it joins (and again at the end, for
the drift), and starts its processes with it, so the timestamps messages carry are the lead's
clock on every host and latencies across hosts subtract like local ones (docs/how-to/multi-host.md, "Clocks").

Commands are re-sent until answered (:mod:`zmqtrade.launch.peering`): a cut link delays the
conversation, it does not break it. A peer that hears nothing from the lead for
``LEAD_LOST_S`` stops its processes in order and reports on its own.
"""
from __future__ import annotations

import logging

from zmqtrade.topology import Topology

log = logging.getLogger("zmqtrade.launcher")

JOIN_WAIT_S = 120.0
"""How long the lead waits for the other hosts' launchers (someone has to start them)."""
LEAD_LOST_S = 30.0
"""A peer that hears nothing from the lead this long stops its processes and reports alone."""
SILENT_S = 2.0
"""A host silent this long is reported (link down?); it may come back."""
REPORT_WAIT_S = 15.0
BYE_WAIT_S = 1.0
"""How long the lead waits for each host to answer its last word before it closes the channel."""


def data_endpoints(endpoints: dict[str, str]) -> dict[str, str]:
    """Endpoints other hosts connect to: all but each launcher's own control socket."""
    return {k: v for k, v in endpoints.items() if k != "control"}


def endpoints_for(topo: Topology, host: str) -> dict[str, str]:
    """The endpoints bound away from ``host``, as resolved so far: what its processes connect to
    (its own binders' endpoints are its own business: an ipc path in its run directory, say)."""
    return {k: v for k, v in data_endpoints(topo.binds()).items()
            if not topo.host_local(k) and topo.binder_host(k) != host}
