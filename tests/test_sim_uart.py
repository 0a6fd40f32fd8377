"""The board design end to end through its UART pins (sim/uart_tb.py): a bit-level cocotb
UART model with the host driver's serial framing on top, the digits MLP bit-exact against
IntNetwork.forward at several precisions, and a frame with lost bytes answered after the
bridge's inter-byte timeout instead of hanging the link."""

import numpy as np
import pytest

from anyprec.golden.arith import quantize_pixels
from anyprec.golden.data import load_split
from anyprec.golden.export import DEFAULT_MODEL, load_model
from anyprec.host.protocol import Status
from anyprec.hw.config import AnyprecConfig
from anyprec.sim.uart_runner import run_uart

CFG = AnyprecConfig(rows=8, cols=8, layers=3, stream_width=8)


def _check(sim, precisions, samples, planes, cfg=CFG, target="generic"):
    net, _ = load_model(DEFAULT_MODEL)
    _, x, _, _ = load_split()
    settings = [(k, a, quantize_pixels(x[:samples], a, net.a)) for k, a in precisions]
    result, logits = run_uart(cfg, net, settings, sim=sim, planes=planes, target=target)
    assert (result["info_rows"], result["info_cols"]) == (cfg.rows, cfg.cols)
    assert result["lost_bytes_status"] == Status.TRUNCATED
    assert result["lost_bytes_tag"] == 0x5A
    assert result["after_loss_ok"] is True
    for (k, a, xq), got in zip(settings, logits):
        want = net.forward(xq.T, k, a).T
        np.testing.assert_array_equal(got, want, err_msg=f"{sim}: wbits {k} abits {a}")


def test_uart_digits_icarus():
    """Fast: three precisions (planes 0..2 loaded), two test images each, on Icarus."""
    _check("icarus", [(3, 8), (2, 4), (1, 8)], samples=2, planes=3)


@pytest.mark.slow
def test_uart_digits_ice40_target():
    """The iCEBreaker's design as its build makes it (target ice40: seven-stage requantiser,
    bit-serial CRCs, no register slices) at its 1x4 array, with three layer slots for the
    digits model (the board itself has one): two precisions, one image each, Verilator.
    In make test-all (suite time); make test runs the iCE40 form's pieces in unit tests,
    the board configuration with the one-layer model, and its fuzz test."""
    from dataclasses import replace
    from anyprec.boards.registry import BOARDS
    cfg = replace(BOARDS["icebreaker"].default, layers=3)
    _check("verilator", [(2, 8), (1, 4)], samples=1, planes=2, cfg=cfg, target="ice40")


@pytest.mark.slow
def test_uart_digits_ecp5_target():
    """The ECP5 boards' design as their builds make it (target ecp5: the MAC array's first
    adder level as CCU2C carry cells, simulated with yosys' cell models) at the ULX3S-25F /
    iCESugar-Pro default configuration, through the UART pins: two precisions, one image
    each, Verilator. In make test-all."""
    from anyprec.boards.registry import BOARDS
    _check("verilator", [(3, 8), (1, 4)], samples=1, planes=3,
           cfg=BOARDS["ulx3s-25f"].default, target="ecp5")


@pytest.mark.slow
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_uart_digits_full(sim):
    """All planes, 8/5/1-bit weights and 8/4/2-bit activations, four images each."""
    _check(sim, [(8, 8), (5, 4), (1, 2)], samples=4, planes=None)
