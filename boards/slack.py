"""Where an ECP5 or iCE40 build misses its clock: every failing endpoint, grouped by
register.

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

#: Cells whose outputs start a timing path (and whose inputs end one). iCE40 logic cells
#: (ICESTORM_LC) are sequential when their flip-flop is on (``DFF_ENABLE``).
_SEQUENTIAL = ("TRELLIS_FF", "DP16KD", "MULT18X18D", "TRELLIS_IO", "EHXPLLL", "DCCA",
               "ICESTORM_RAM", "ICESTORM_SPRAM", "ICESTORM_DSP", "ICESTORM_PLL", "SB_IO",
               "SB_GB")

#: iCE40 register inputs: block RAM, SPRAM and SB_MAC16 (nextpnr times every SB_MAC16
#: port as a register port).
_ICE40_ENDPOINTS = ("ICESTORM_RAM", "ICESTORM_SPRAM", "ICESTORM_DSP")


class SlackError(AnyprecError, ValueError):
    """The netlist or timing report cannot be read."""


def group_name(name):
    """A register's group: its signal name without yosys' mapping suffixes and bit index
    (``core.fifo_d_TRELLIS_FF_Q_12`` -> ``core.fifo_d``)."""
    name = re.sub(r"_(SB_|ICESTORM_|TRELLIS|LUT4|CCU2C|PFUMX|L6MUX21|DP16KD|MULT18X18D|"
                  r"DPR16X4).*$", "", name)
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

#: nextpnr 0.11's iCE40 UP5K model: a logic cell's flip-flop fed through its LUT needs the
#: LUT's delay from that input less 0.05 ns (I0 1.284, I1 and I2 1.231, I3 0.874 ns);
#: every other register input (CEN, SR, block RAM, SPRAM, SB_MAC16) 0.1 ns.
_ICE40_SETUP_NS = {"I0": 1.234, "I1": 1.181, "I2": 1.181, "I3": 0.824}


def _is_dff(cell):
    return cell["type"] == "ICESTORM_LC" and \
        str(cell.get("parameters", {}).get("DFF_ENABLE", "0")).lstrip("0") == "1"


def endpoint_slack(netlist, report, clock_mhz, *, top=25):
    """Failing endpoints of a routed ECP5 or iCE40 design at ``clock_mhz``.

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
        after the period, setup time included), ``worst_ns`` (latest arrival),
        ``clock_offset_ns`` (the clock network's delay taken off the detailed report's
        arrivals, below), and ``groups``: the ``top`` largest (endpoint group, source
        group) pairs, each with ``count`` and ``worst_ns``, most endpoints first.
    """
    if not clock_mhz or clock_mhz <= 0:
        raise SlackError(f"clock must be positive, not {clock_mhz!r}")
    period = 1000.0 / clock_mhz
    modules = _load(netlist, "routed netlist").get("modules", {})
    if "top" not in modules:
        raise SlackError(f"{netlist}: no module 'top' (not a nextpnr --write netlist)")
    cells = modules["top"].get("cells", {})
    rep = _load(report, "timing report")
    timings = rep.get("detailed_net_timings")
    if timings is None:
        raise SlackError(f"{report}: no detailed_net_timings (nextpnr needs "
                         "--detailed-timing-report)")
    ice40 = any(c.get("type", "").startswith("ICESTORM_") for c in cells.values())
    arrival = {}
    for net in timings:
        for e in net.get("endpoints", []):
            key = (e["cell"], e["port"])
            # The detailed report gives the arrival at the pin; add the pin's setup time
            # where nextpnr's model has one (ECP5: a flip-flop's LSR, its critical-path
            # reports end "setup 0.424" there, and 0 at DI, M and CE; iCE40: above).
            setup = (_ICE40_SETUP_NS.get(e["port"], 0.1) if ice40
                     else _SETUP_NS.get(e["port"], 0.0))
            t = float(e["delay"][-1]) + setup
            arrival[key] = max(arrival.get(key, 0.0), t)
    # On iCE40 the detailed report's arrivals count from the clock's source, so they
    # include the clock network's delay to the launching register (0.93 ns on the UP5K);
    # nextpnr's critical path counts from the register's clock pin, as the period does.
    # The two times at the critical path's last pin give that offset, taken off every
    # arrival. (It is 0 on ECP5.)
    offset = 0.0
    for cp in rep.get("critical_paths", []):
        if "<async>" in (cp.get("from"), cp.get("to")):
            continue                        # from or to a pin: no clock at one end
        seg = (cp.get("path") or [None])[-1]
        key = seg and (seg["to"]["cell"], seg["to"]["port"])
        if key in arrival:
            total = sum(float(x["delay"]) for x in cp["path"])
            offset = max(offset, arrival[key] - total)
    if offset > 0:
        arrival = {k: a - offset for k, a in arrival.items()}
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
            if c["type"] in _SEQUENTIAL or _is_dff(c):
                return d
            ins = [(arrival.get((d, p), -1.0), p) for p, v in c["connections"].items()
                   if c["port_directions"].get(p) == "input" and p != "CLK"
                   and any(isinstance(b, int) for b in v)]
            if not ins:
                return d
            cn, port = d, max(ins)[1]
        return "(unknown)"

    def is_endpoint(cell, port):
        t = cell["type"]
        if t in ("TRELLIS_FF", "DP16KD", "MULT18X18D"):
            return True
        if t in _ICE40_ENDPOINTS:
            return port not in ("CLK", "CLOCK", "RCLK", "WCLK")
        if t == "ICESTORM_LC":
            return _is_dff(cell) and port not in ("CLK", "CIN")
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
            "worst_ns": round(max((e[0] for e in eps), default=0.0), 3),
            "clock_offset_ns": round(offset, 3), "groups": groups}


def slack_table(result):
    """The groups as a readable table (Markdown)."""
    lines = [f"{result['failing']} of {result['endpoints']} register inputs arrive after "
             f"{result['period_ns']} ns (latest {result['worst_ns']} ns)", "",
             "| endpoints | latest (ns) | register | from |", "|---:|---:|---|---|"]
    for g in result["groups"]:
        lines.append(f"| {g['count']} | {g['worst_ns']:.2f} | {g['endpoint']} | "
                     f"{g['source']} |")
    return "\n".join(lines)
