"""The layer engine: runs one layer (or one raw matvec) through the MAC array.

Schedule (serial design), one weight word and one activation word per cycle, no bubbles
between chunks, planes or row tiles::

    for t in row tiles:            # R rows at a time
        for p in 0 .. k-1:         # bit-planes, MSB first
            for j in input chunks: # C inputs at a time
                issue(addr = base + p*TJ + t*J + j, chunk j)

The weight memory is plane-major within a layer (``base + p*TJ + t*J + j``, TJ = T*J
words per plane), so loading plane p is one contiguous write and stopping at k planes
never touches the planes below. The bit-parallel baseline has one word per (t, j)
holding all planes and runs a single "plane".

When a tile finishes, its R accumulators move to a shadow register that drains ``DL``
rows per cycle (``cfg.drain_lanes``, a power of two dividing R and C) into ``D = 2P - Q``
and ``DL`` requantisers, while the array already works on the next tile. A tile
therefore needs at least R/DL cycles; when ``k*J < R/DL`` the sequencer waits the
difference (the only case with bubbles). Results leave in groups of up to ``DL``
consecutive rows, the first row of a group a multiple of ``DL``.
"""

from amaranth import Module, Signal, Mux, Cat, signed, unsigned
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from ..golden.arith import M_BITS, B_BITS, SHIFT_MAX
from .lane import MacArray, is_ice40
from .requant import Requant

__all__ = ["LayerEngine", "MODE_RAW", "MODE_HIDDEN", "MODE_FINAL", "W_LATENCY"]

MODE_RAW, MODE_HIDDEN, MODE_FINAL = 0, 1, 2

#: Cycles from ``w_addr`` to its ``w_data`` (the core's banked weight memory).
W_LATENCY = 2


class LayerEngine(wiring.Component):
    """Run one layer: weights x activations -> D -> (requantised) results, row by row.

    Parameters
    ----------
    cfg : AnyprecConfig

    Members
    -------
    start : In(1)
        Begin; every parameter below is sampled in this cycle.
    base, tj, j_s : In
        Layer region start, words per plane (T*J, stored size), chunks per tile (stored).
    t_run, j_run, m_run : In
        Row tiles, input chunks and rows of this run (slimmed sizes allowed).
    k : In
        Weight precision (planes to use); the parallel design ignores it.
    mode : In(2)
        MODE_RAW (output D), MODE_HIDDEN (requantise to activations), MODE_FINAL (logits).
    q : In(acc_bits)
        Shared correction ``(2^k - 1) * sum x`` for this run.
    shift, a_in, a_out, tab_base : In
        Requantisation parameters and the table row-0 address for (layer, k).
    w_addr, x_addr, t_addr : Out
        Read addresses (weight memory, activation buffer, requant table); data is
        expected on ``x_data`` one cycle later, on ``w_data`` and ``t_m``/``t_b``
        ``W_LATENCY`` (2) cycles later. A table word holds the entries of ``DL``
        consecutive rows (lane i: row ``DL*t_addr' + i``); ``t_m``/``t_b`` are its lanes.
    o_valid, o_n, o_values : Out
        Results in row order, ``o_n`` (1..DL) of them per valid cycle in lanes
        ``o_values[0 .. o_n-1]``: D (raw), activations (hidden) or logits (final).
        Lanes at and above ``o_n`` are zero. ``o_value`` is lane 0.
    busy, done : Out(1)
        ``done`` pulses with the last result.
    """

    def __init__(self, cfg):
        self._cfg = cfg
        w = cfg.widths
        aw = max(cfg.depth_words - 1, 1).bit_length()
        self._aw = aw
        tab_depth = cfg.layers * cfg.max_wbits * cfg.tab_stride
        DL = cfg.drain_lanes
        super().__init__({
            "start": In(1),
            "base": In(aw), "tj": In(aw), "j_s": In(range(cfg.chunks_max + 1)),
            "t_run": In(range(cfg.tiles_max + 1)), "j_run": In(range(cfg.chunks_max + 1)),
            "m_run": In(range(cfg.max_m + 1)), "k": In(range(cfg.max_wbits + 1)),
            "mode": In(2), "q": In(w.acc_bits),
            "shift": In(range(SHIFT_MAX + 1)), "a_in": In(range(cfg.max_abits + 1)),
            "a_out": In(range(cfg.max_abits + 1)), "tab_base": In(range(max(tab_depth, 2))),
            "w_addr": Out(aw), "w_data": In(cfg.word_bits),
            "x_addr": Out(range(max(cfg.act_depth, 2))), "x_data": In(cfg.cols * cfg.max_abits),
            "t_addr": Out(range(max(tab_depth, 2))),
            "t_m": In(data.ArrayLayout(signed(M_BITS), DL)),
            "t_b": In(data.ArrayLayout(signed(B_BITS), DL)),
            "o_valid": Out(1), "o_n": Out(range(DL + 1)),
            "o_values": Out(data.ArrayLayout(signed(32), DL)), "o_value": Out(signed(32)),
            "busy": Out(1), "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        R = cfg.rows
        DL = cfg.drain_lanes
        RD = R // DL            # drain cycles of a full tile
        w = cfg.widths
        serial = cfg.design == "serial"
        ice40 = is_ice40(platform)

        # --- parameters, latched at start ---
        base = Signal.like(self.base)
        tj = Signal.like(self.tj)
        j_s = Signal.like(self.j_s)
        # j_run and k less one (off iCE40 they reload down-counters of what is left), and
        # j_run, k and t_run less two (the iCE40 form's loop ends compare the counters
        # with these as they step), so that no adder sits in front of a compare (Fmax).
        j_last = Signal(signed(len(self.j_run) + 1))
        t_pen = Signal(signed(len(self.t_run) + 1))
        k_last = Signal(signed(len(self.k) + 1))
        j_pen = Signal.like(j_last)
        k_pen = Signal.like(k_last)
        m_run = Signal.like(self.m_run)
        mode = Signal.like(self.mode)
        q = Signal.like(self.q)
        shift = Signal.like(self.shift)
        a_in = Signal.like(self.a_in)
        a_out = Signal.like(self.a_out)
        tab_base = Signal.like(self.tab_base)
        with m.If(self.start):
            m.d.sync += [s.eq(i) for s, i in (
                (base, self.base), (tj, self.tj), (j_s, self.j_s), (m_run, self.m_run),
                (j_last, self.j_run - 1), (k_last, self.k - 1 if serial else 0),
                (t_pen, self.t_run - 2), (j_pen, self.j_run - 2),
                (k_pen, self.k - 2 if serial else -1),
                (mode, self.mode), (q, self.q), (shift, self.shift), (a_in, self.a_in),
                (a_out, self.a_out), (tab_base, self.tab_base))]

        # --- issue: the (t, p, j) loop ---
        issuing = Signal()
        waiting = Signal()
        t = Signal.like(self.t_run)
        p = Signal.like(self.k)
        j = Signal.like(self.j_run)
        addr = Signal(self._aw)
        tile_cyc = Signal(range(max(RD, 2) + 1))
        issue = Signal()
        m.d.comb += [
            issue.eq(issuing & ~waiting),
            self.w_addr.eq(addr),
        ]
        if ice40:
            # The activation buffer is read a cycle later, from a register of j, and its
            # data goes straight into x_q (below): the address's few flip-flops instead
            # of a second activation register (x_h: cols x A flip-flops, a logic cell
            # each on iCE40).
            x_ad = Signal.like(self.x_addr)
            m.d.sync += x_ad.eq(j)
            m.d.comb += self.x_addr.eq(x_ad)
        else:
            m.d.comb += self.x_addr.eq(j)
        # Off iCE40 the next plane's and the next tile's first addresses are kept ready
        # in `plane_a` and `tile_a` (the sums of a start address and a stride, selected
        # by the loop ends, were a long path into the address registers: Fmax), and the
        # loop ends are flip-flops, exact after every change of t, p or j. On iCE40
        # (logic cells are short, the clock slow) `plane_a` and `tile_a` hold the current
        # plane's and tile's first addresses, and the sums are made when needed; the
        # loop ends are flip-flops there too, set from a compare of the counter with its
        # run length less two as it steps (the compares in front of the address
        # registers' selects were a long path group at 50 MHz, docs/boards.md).
        plane_a = Signal(self._aw)
        tile_a = Signal(self._aw)
        if ice40:
            end_j, end_p, end_t = Signal(), Signal(), Signal()
            j_one, k_one = Signal(), Signal()       # j_run == 1, k == 1 (the layer's)
            next_plane, next_tile_a = plane_a + tj, tile_a + j_s
        else:
            end_j, end_p, end_t = Signal(), Signal(), Signal()
            next_plane, next_tile_a = plane_a, tile_a
            # Chunks, planes and tiles left after this one (j_last - j, k_last - p,
            # t_last - t), so that "the next one is the last" is a compare with 1 (the
            # compares of the counters with their run lengths less two were long paths
            # at 150 MHz).
            j_left, p_left, t_left = Signal.like(j), Signal.like(p), Signal.like(t)
            # What the next issue does is a flip-flop too: `go_j` (next chunk), `go_p`
            # (next plane), `go_t` (next tile), from the loop ends' next values (n_end_*),
            # so that the address registers' enables and selects are one LUT after a
            # flip-flop (the loop-end flags' decode in front of them, with the placer
            # spreading the address registers, was the 45F's critical path).
            n_end_j, n_end_p, n_end_t = Signal(), Signal(), Signal()
            go_j, go_p, go_t = Signal(), Signal(), Signal()
            m.d.comb += [n_end_j.eq(end_j), n_end_p.eq(end_p), n_end_t.eq(end_t)]
            m.d.sync += [end_j.eq(n_end_j), end_p.eq(n_end_p), end_t.eq(n_end_t),
                         go_j.eq(~n_end_j), go_p.eq(n_end_j & ~n_end_p),
                         go_t.eq(n_end_j & n_end_p & ~n_end_t)]
        # (the branch conditions: on iCE40 the loop ends, off it the flags above)
        c_j, c_p, c_tend = ((~end_j, ~end_p, end_t) if ice40 else (go_j, go_p, ~go_t))
        with m.If(self.start):
            m.d.sync += [issuing.eq(1), waiting.eq(0), t.eq(0), p.eq(0), j.eq(0),
                         addr.eq(self.base), tile_cyc.eq(0),
                         plane_a.eq(self.base if ice40 else self.base + self.tj),
                         tile_a.eq(self.base if ice40 else self.base + self.j_s)]
            if ice40:
                k1 = self.k == 1 if serial else 1
                m.d.sync += [end_j.eq(self.j_run == 1), end_p.eq(k1),
                             end_t.eq(self.t_run == 1), j_one.eq(self.j_run == 1),
                             k_one.eq(k1)]
            else:
                m.d.comb += [n_end_j.eq(self.j_run == 1), n_end_t.eq(self.t_run == 1),
                             n_end_p.eq(self.k == 1 if serial else 1)]
                m.d.sync += [j_left.eq(self.j_run - 1), p_left.eq(self.k - 1 if serial else 0),
                             t_left.eq(self.t_run - 1)]
        with m.Elif(issue):
            # Saturate at R/DL: a tile longer than that would otherwise wrap the counter
            # and the spacing check below would insert bubbles that are not needed.
            with m.If(tile_cyc != RD):
                m.d.sync += tile_cyc.eq(tile_cyc + 1)
            with m.If(c_j):
                m.d.sync += [j.eq(j + 1), addr.eq(addr + 1)]
                if ice40:
                    m.d.sync += end_j.eq(j == j_pen)
                else:
                    m.d.comb += n_end_j.eq(j_left == 1)
                    m.d.sync += j_left.eq(j_left - 1)
            with m.Elif(c_p):
                m.d.sync += [j.eq(0), p.eq(p + 1), addr.eq(next_plane),
                             plane_a.eq(next_plane if ice40 else plane_a + tj)]
                if ice40:
                    m.d.sync += [end_j.eq(j_one), end_p.eq(p == k_pen)]
                else:
                    m.d.comb += [n_end_j.eq(j_last == 0), n_end_p.eq(p_left == 1)]
                    m.d.sync += [j_left.eq(j_last), p_left.eq(p_left - 1)]
            with m.Else():
                m.d.sync += [j.eq(0), p.eq(0)]
                if ice40:
                    m.d.sync += [end_j.eq(j_one), end_p.eq(k_one)]
                else:
                    m.d.comb += [n_end_j.eq(j_last == 0), n_end_p.eq(k_last == 0)]
                    m.d.sync += [j_left.eq(j_last), p_left.eq(k_last)]
                with m.If(c_tend):
                    m.d.sync += issuing.eq(0)
                with m.Else():
                    m.d.sync += [t.eq(t + 1), addr.eq(next_tile_a),
                                 plane_a.eq(next_tile_a if ice40 else tile_a + tj),
                                 tile_a.eq(next_tile_a if ice40 else tile_a + j_s)]
                    if ice40:
                        m.d.sync += end_t.eq(t == t_pen)
                    else:
                        m.d.comb += n_end_t.eq(t_left == 1)
                        m.d.sync += t_left.eq(t_left - 1)
                    # The shadow register drains DL rows per cycle: tiles start >= R/DL
                    # cycles apart.
                    with m.If(tile_cyc + 1 >= RD):
                        m.d.sync += tile_cyc.eq(0)
                    with m.Else():
                        m.d.sync += waiting.eq(1)
        with m.Elif(waiting):
            with m.If(tile_cyc + 1 >= RD):
                m.d.sync += [waiting.eq(0), tile_cyc.eq(0)]
            with m.Else():
                m.d.sync += tile_cyc.eq(tile_cyc + 1)

        # Control flags registered to line up with the memories' read data, then one more
        # register stage for data and flags alike, so that block-RAM clock-to-out (5.8 ns
        # on an ECP5 DP16KD without its output register) ends in a flip-flop instead of
        # in the array's first adder level (Fmax, docs/boards.md).
        # The weight memory answers W_LATENCY (2) cycles after the address (it is banked,
        # each bank's output registered before the bank multiplexer; hw/core.py), the
        # activation buffer after one: flags and activations are delayed to match.
        iv, ifirst, idbl, ilast = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [iv.eq(issue), ifirst.eq((p == 0) & (j == 0)),
                     idbl.eq((p != 0) & (j == 0)), ilast.eq(end_p & end_j)]
        hv, hfirst, hdbl, hlast = Signal(), Signal(), Signal(), Signal()
        m.d.sync += [hv.eq(iv), hfirst.eq(ifirst), hdbl.eq(idbl), hlast.eq(ilast)]
        if ice40:
            x_h = self.x_data       # (read a cycle later: x_addr above)
        else:
            x_h = Signal.like(self.x_data)
            m.d.sync += x_h.eq(self.x_data)
        jv, jfirst, jdbl, jlast = Signal(), Signal(), Signal(), Signal()
        w_q = Signal.like(self.w_data)
        x_q = Signal.like(self.x_data)
        m.d.sync += [jv.eq(hv), jfirst.eq(hfirst), jdbl.eq(hdbl), jlast.eq(hlast),
                     w_q.eq(self.w_data), x_q.eq(x_h)]

        # --- the array ---
        m.submodules.array = array = MacArray(
            rows=R, cols=cfg.cols, abits=cfg.max_abits, acc_bits=w.acc_bits,
            wbits=1 if serial else cfg.max_wbits)
        m.d.comb += [array.valid.eq(jv), array.first.eq(jfirst), array.dbl.eq(jdbl),
                     array.last.eq(jlast), array.w.eq(w_q), array.x.eq(x_q)]

        # --- drain: shadow register, DL rows per cycle ---
        shadow = Signal(data.ArrayLayout(w.acc_bits, R))
        draining = Signal()
        # The tile's rows counted in groups of DL (a power of two dividing R), with the
        # last group's size kept aside: the group size is then a select on a constant
        # compare, not a compare and a subtraction of the rows left in series (a long
        # path at 150 MHz, Fmax). A tile has at least one row.
        g_left = Signal(range(R // DL + 1))          # groups of this tile still to emit
        last_n = Signal(range(DL + 1))               # rows in its last group
        rows_left = Signal(range(cfg.max_m + 1))
        grp = Signal(range(max(cfg.tab_stride, 2)))   # group (DL rows) being drained
        n_grp = Signal(range(DL + 1))                 # rows in that group
        m.d.comb += n_grp.eq(Mux(g_left == 1, last_n, DL))
        # rows_left >= R as a flip-flop, exact (a compare selecting the subtraction was a
        # long path at 150 MHz).
        rows_big = Signal()
        with m.If(self.start):
            m.d.sync += [rows_left.eq(self.m_run), rows_big.eq(self.m_run >= R), grp.eq(0),
                         draining.eq(0)]
        with m.Else():
            with m.If(draining):
                m.d.sync += [shadow.eq(Cat(shadow.as_value()[DL * w.acc_bits:], 0)),
                             grp.eq(grp + 1), g_left.eq(g_left - 1)]
                with m.If(g_left == 1):
                    m.d.sync += draining.eq(0)
            with m.If(array.done):
                n_rows = Signal(range(R + 1))
                lg = (DL - 1).bit_length()
                big = (rows_left >= R) if ice40 else rows_big      # (iCE40: cells)
                m.d.comb += n_rows.eq(Mux(big, R, rows_left))
                m.d.sync += [shadow.eq(array.acc), draining.eq(1),
                             g_left.eq((n_rows + (DL - 1)) >> lg),
                             last_n.eq(((n_rows - 1) & (DL - 1)) + 1),
                             rows_left.eq(Mux(big, rows_left - R, 0)),
                             rows_big.eq(rows_left >= 2 * R)]

        # --- D = 2P - Q per lane, then raw output or requantisation ---
        ds = [Signal(signed(w.d_bits), name=f"d{i}") for i in range(DL)]
        dv = Signal()
        dn = Signal(range(DL + 1))
        m.d.sync += [d.eq((shadow[i] << 1) - q) for i, d in enumerate(ds)]
        m.d.sync += [dv.eq(draining & ~self.start), dn.eq(n_grp)]
        # The requantisation table answers T_LATENCY (2) cycles after ``t_addr`` (banked
        # like the weight memory): D waits one more cycle for its table entry.
        ds_t = [Signal.like(d, name=f"d{i}_t") for i, d in enumerate(ds)]
        dv_t = Signal()
        dn_t = Signal.like(dn)
        m.d.sync += [dt.eq(d) for dt, d in zip(ds_t, ds)]
        m.d.sync += [dv_t.eq(dv & ~self.start), dn_t.eq(dn)]
        m.d.comb += self.t_addr.eq(tab_base + grp)

        raw = mode == MODE_RAW
        rqs = []
        for i in range(DL):
            rq = Requant(abits=cfg.max_abits, d_bits=w.d_bits, v_bits=w.v_bits,
                         round_bits=w.round_bits, compact=ice40)
            m.submodules[f"requant{i}" if DL > 1 else "requant"] = rq
            m.d.comb += [
                rq.valid.eq(dv_t & ~raw & (dn_t > i)), rq.d.eq(ds_t[i]),
                rq.m.eq(self.t_m[i]), rq.b.eq(self.t_b[i]),
                rq.shift.eq(shift), rq.a_in.eq(a_in), rq.a_out.eq(a_out),
                rq.final.eq(mode == MODE_FINAL),
            ]
            rqs.append(rq)
        # The group size travels with the requantisers' pipeline.
        rq_n = dn_t
        for s_ in range(rqs[0].latency):
            nxt = Signal.like(dn_t, name=f"rq_n{s_}")
            m.d.sync += nxt.eq(rq_n)
            rq_n = nxt
        # Output register: the raw/requantised choice and the consumers (result FIFO,
        # activation writer) in one cycle were a long path (Fmax, docs/boards.md).
        with m.If(raw):
            m.d.sync += [self.o_valid.eq(dv & ~self.start), self.o_n.eq(dn)]
            m.d.sync += [self.o_values[i].eq(Mux(dn > i, d, 0)) for i, d in enumerate(ds)]
        with m.Else():
            m.d.sync += [self.o_valid.eq(rqs[0].o_valid & ~self.start), self.o_n.eq(rq_n)]
            m.d.sync += [self.o_values[i].eq(Mux(rq.o_valid, rq.o_value, 0))
                         for i, rq in enumerate(rqs)]
        m.d.comb += self.o_value.eq(self.o_values[0])

        # --- completion ---
        # A group is the last one exactly when at most DL results are still to come: every
        # tile but the last has R rows, a multiple of DL, so any earlier group leaves at
        # least one more row behind it. That test is kept as a flip-flop (``few``); an
        # equality of the count with o_n in front of the core's compute FSM was a long
        # path at 150 MHz (Fmax), and on iCE40 at 50 MHz (docs/boards.md).
        out_left = Signal(range(cfg.max_m + 1))     # results still to come
        left_nxt = Signal.like(out_left)
        few = Signal()                               # out_left <= DL
        running = Signal()
        last_out = self.o_valid & few
        m.d.comb += left_nxt.eq(out_left - self.o_n)
        with m.If(self.start):
            m.d.sync += [out_left.eq(self.m_run), few.eq(self.m_run <= DL), running.eq(1)]
        with m.Elif(self.o_valid):
            m.d.sync += [out_left.eq(left_nxt), few.eq(left_nxt <= DL)]
            with m.If(last_out):
                m.d.sync += running.eq(0)
        m.d.comb += [self.done.eq(running & last_out), self.busy.eq(running)]
        return m
