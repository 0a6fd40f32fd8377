"""Where an ECP5 build misses its clock: every failing endpoint, grouped by register.

nextpnr reports one critical path per clock. Lifting Fmax needs the whole picture: how
many endpoints miss the period and which registers they start and end at. With
``--detailed-timing-report`` nextpnr writes the arrival time at every sink pin of every
net, and with ``--write`` the routed netlist; from the two this module lists each
register input (flip-flop, block RAM, multiplier, distributed-RAM write port) that
arrives later than the period, traces its path back to the register it starts from
(always following the input that arrives last), and groups the endpoints by register
name (bus bits and yosys' mapping suffixes stripped). ``anyprec build --slack`` runs it.
"""

import collections
import json
import re

from ..golden.errors import AnyprecError

__all__ = ["endpoint_slack", "group_name", "slack_table", "SlackError"]

#: Cells whose outputs start a timing path (and whose inputs end one).
_SEQUENTIAL = ("TRELLIS_FF", "DP16KD", "MULT18X18D", "TRELLIS_IO", "EHXPLLL", "DCCA")


class SlackError(AnyprecError, ValueError):
    """The netlist or timing report cannot be read."""


def group_name(name):
    """A register's group: its signal name without yosys' mapping suffixes and bit index
    (``core.fifo_d_TRELLIS_FF_Q_12`` -> ``core.fifo_d``)."""
    name = re.sub(r"_(TRELLIS|LUT4|CCU2C|PFUMX|L6MUX21|DP16KD|MULT18X18D|DPR16X4).*$", "",
                  name)
    name = re.sub(r"\$.*$", "", name)
    return re.sub(r"(_\d+)+$", "", name) or "(unnamed)"


def _load(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise SlackError(f"cannot read the {what} {path}: {e}") from None


#: Setup times (ns) that nextpnr 0.11's ECP5 timing model adds at a register pin, by port
#: (read off its critical-path reports; the other flip-flop pins have none).
_SETUP_NS = {"LSR": 0.424}


def endpoint_slack(netlist, report, clock_mhz, *, top=25):
    """Failing endpoints of a routed ECP5 design at ``clock_mhz``.

    Parameters
    ----------
    netlist : path
        nextpnr's ``--write`` JSON (the routed netlist).
    report : path
        nextpnr's ``--report`` JSON written with ``--detailed-timing-report``.
    clock_mhz : float
        The clock whose period the arrivals are checked against.
    top : int
        Groups listed.

    Returns
    -------
    dict
        ``period_ns``, ``endpoints`` (register inputs timed), ``failing`` (arriving
        after the period, setup time included), ``worst_ns`` (latest arrival), and ``groups``: the ``top``
        largest (endpoint group, source group) pairs, each with ``count`` and
        ``worst_ns``, most endpoints first.
    """
    if not clock_mhz or clock_mhz <= 0:
        raise SlackError(f"clock must be positive, not {clock_mhz!r}")
    period = 1000.0 / clock_mhz
    modules = _load(netlist, "routed netlist").get("modules", {})
    if "top" not in modules:
        raise SlackError(f"{netlist}: no module 'top' (not a nextpnr --write netlist)")
    cells = modules["top"].get("cells", {})
    timings = _load(report, "timing report").get("detailed_net_timings")
    if timings is None:
        raise SlackError(f"{report}: no detailed_net_timings (nextpnr needs "
                         "--detailed-timing-report)")
    arrival = {}
    for net in timings:
        for e in net.get("endpoints", []):
            key = (e["cell"], e["port"])
            # The detailed report gives the arrival at the pin; add the pin's setup time
            # where nextpnr's ECP5 model has one (a flip-flop's LSR: its critical-path
            # reports end "setup 0.424" there, and 0 at DI, M and CE).
            t = float(e["delay"][-1]) + _SETUP_NS.get(e["port"], 0.0)
            arrival[key] = max(arrival.get(key, 0.0), t)
    drivers = {}
    for cn, c in cells.items():
        for p, bits in c["connections"].items():
            if c["port_directions"].get(p) == "output":
                for b in bits:
                    if isinstance(b, int):
                        drivers[b] = cn

    def source(cn, port):
        for _ in range(500):
            bits = [b for b in cells[cn]["connections"].get(port, []) if isinstance(b, int)]
            if not bits or bits[0] not in drivers:
                return "(constant)"
            d = drivers[bits[0]]
            c = cells[d]
            if c["type"] in _SEQUENTIAL:
                return d
            ins = [(arrival.get((d, p), -1.0), p) for p, v in c["connections"].items()
                   if c["port_directions"].get(p) == "input"
                   and any(isinstance(b, int) for b in v)]
            if not ins:
                return d
            cn, port = d, max(ins)[1]
        return "(unknown)"

    def is_endpoint(cell, port):
        t = cell["type"]
        if t in ("TRELLIS_FF", "DP16KD", "MULT18X18D"):
            return True
        # distributed RAM: its write port is synchronous
        return t == "TRELLIS_COMB" and cell.get("parameters", {}).get("MODE") == "DPRAM" \
            and port.startswith("W")

    eps = [(a, cn, p) for (cn, p), a in arrival.items()
           if cn in cells and is_endpoint(cells[cn], p)]
    failing = [e for e in eps if e[0] > period]
    count = collections.Counter()
    worst = {}
    for a, cn, p in failing:
        key = (group_name(cn), group_name(source(cn, p)))
        count[key] += 1
        worst[key] = max(worst.get(key, 0.0), a)
    groups = [{"endpoint": k[0], "source": k[1], "count": n, "worst_ns": round(worst[k], 3)}
              for k, n in sorted(count.items(), key=lambda kv: (-kv[1], -worst[kv[0]]))[:top]]
    return {"period_ns": round(period, 3), "endpoints": len(eps), "failing": len(failing),
            "worst_ns": round(max((e[0] for e in eps), default=0.0), 3), "groups": groups}


def slack_table(result):
    """The groups as a readable table (Markdown)."""
    lines = [f"{result['failing']} of {result['endpoints']} register inputs arrive after "
             f"{result['period_ns']} ns (latest {result['worst_ns']} ns)", "",
             "| endpoints | latest (ns) | register | from |", "|---:|---:|---|---|"]
    for g in result["groups"]:
        lines.append(f"| {g['count']} | {g['worst_ns']:.2f} | {g['endpoint']} | "
                     f"{g['source']} |")
    return "\n".join(lines)
