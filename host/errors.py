"""Typed errors of the anyprec host side (driver, protocol, transports).

Every class here is an :class:`anyprec.golden.errors.AnyprecError`, so the CLI prints it as
one line. The split follows who is at fault:

* :class:`DeviceError` and its subclasses: the device answered, and refused the command
  with a non-OK status (docs/protocol.md section 4). The device state is unchanged.
* :class:`ProtocolError`: the device's answer is malformed (bad CRC, wrong tag or opcode
  echo, wrong length). The link may be out of step; the driver forgets its cached state.
* :class:`DeviceTimeout`: no (complete) answer in time.
* :class:`ModelMismatchError`: the model does not fit the device; detected from ``INFO``
  before anything is sent.
* :class:`FieldError`: a value does not fit the bits of a protocol field, so no frame can
  carry it (a host-side mistake; nothing is sent).
"""

from __future__ import annotations

from ..golden.errors import AnyprecError

__all__ = [
    "DeviceError", "BadCrcError", "BadOpcodeError", "BadLengthError", "TruncatedError",
    "OversizeError", "RangeError", "NotReadyError", "OrderError", "ConflictError",
    "DeviceTimeout", "ProtocolError", "ModelMismatchError", "FieldError",
    "device_error_class",
]

# Status meanings of docs/protocol.md section 4, used when nothing more precise is known.
_MEANINGS = {
    0x01: "the device computed a different CRC for the frame",
    0x02: "the device does not know this opcode",
    0x03: "the frame length is not the one this command needs",
    0x04: "the frame ended (tlast) before its CRC word",
    0x05: "the frame had no tlast on its CRC word; the rest was discarded",
    0x06: "a field is out of range (layer index, precision, size, memory region or "
          "activation value)",
    0x07: "the layer is not configured, or lacks the planes or requantisation table "
          "this precision needs",
    0x08: "planes must be loaded strictly in order, MSB plane 0 first",
    0x09: "memory regions of two layers overlap, or consecutive layer sizes do not chain",
}

_NAMES = {
    0x00: "OK", 0x01: "BAD_CRC", 0x02: "BAD_OPCODE", 0x03: "BAD_LENGTH", 0x04: "TRUNCATED",
    0x05: "OVERSIZE", 0x06: "RANGE", 0x07: "NOT_READY", 0x08: "ORDER", 0x09: "CONFLICT",
}

# Opcodes whose status argument is a layer index (docs/protocol.md section 2).
_LAYER_OPCODES = {0x10, 0x11, 0x12, 0x13, 0x20, 0x21}
# Statuses raised before the command is interpreted: their argument is always 0.
_FRAMING = {0x01, 0x02, 0x04, 0x05}


def _opcode_name(opcode):
    # Imported lazily: protocol.py imports this module.
    from .protocol import Opcode
    try:
        return Opcode(opcode).name
    except ValueError:
        return f"opcode 0x{opcode:02x}" if isinstance(opcode, int) else str(opcode)


class DeviceError(AnyprecError):
    """The device refused a command with a non-OK status.

    Parameters
    ----------
    status : int
        Status code (docs/protocol.md section 4).
    arg : int
        Status argument: the layer index the status refers to, else 0.
    opcode : int
        Opcode of the refused command.
    request : str, optional
        Human description of the refused request (``"LOAD_PLANE layer 1 plane 3"``); the
        opcode name is used when omitted.
    detail : str, optional
        The precise reason when the host could work it out (for example from a ``STATUS``
        read), replacing the generic meaning of the status code.

    Members
    -------
    status, arg, opcode, request, detail
        As given.
    name : str
        Status name, e.g. ``"NOT_READY"``.
    """

    #: Status code of the subclass (None on the base class).
    code: int | None = None

    def __init__(self, status, arg=0, opcode=None, *, request=None, detail=None):
        self.status = int(status)
        self.arg = int(arg)
        self.opcode = opcode
        self.request = request
        self.detail = detail
        super().__init__(self._message())

    @property
    def name(self):
        return _NAMES.get(self.status, f"status 0x{self.status:02x}")

    def _message(self):
        what = self.request or (_opcode_name(self.opcode) if self.opcode is not None
                                else "a command")
        if self.detail:
            reason = self.detail
        else:
            reason = _MEANINGS.get(self.status, "unknown status")
            if self.opcode in _LAYER_OPCODES and self.status not in _FRAMING:
                reason = f"layer {self.arg}: {reason}"
        return f"device refused {what}: {reason} ({self.name})"

    @classmethod
    def from_status(cls, status, arg=0, opcode=None, *, request=None, detail=None):
        """The :class:`DeviceError` subclass instance that matches ``status``."""
        return device_error_class(status)(status, arg, opcode, request=request,
                                          detail=detail)


class BadCrcError(DeviceError):
    """BAD_CRC (0x01): the device computed a different CRC for the frame."""
    code = 0x01


class BadOpcodeError(DeviceError):
    """BAD_OPCODE (0x02): unknown opcode."""
    code = 0x02


class BadLengthError(DeviceError):
    """BAD_LENGTH (0x03): the frame length is not the one the command needs."""
    code = 0x03


class TruncatedError(DeviceError):
    """TRUNCATED (0x04): tlast arrived before the CRC word."""
    code = 0x04


class OversizeError(DeviceError):
    """OVERSIZE (0x05): no tlast on the CRC word; the rest of the frame was discarded."""
    code = 0x05


class RangeError(DeviceError):
    """RANGE (0x06): a field is out of range."""
    code = 0x06


class NotReadyError(DeviceError):
    """NOT_READY (0x07): layer not configured, or planes / requantisation table missing."""
    code = 0x07


class OrderError(DeviceError):
    """ORDER (0x08): LOAD_PLANE for a plane other than the next one."""
    code = 0x08


class ConflictError(DeviceError):
    """CONFLICT (0x09): overlapping memory regions, or layer sizes that do not chain."""
    code = 0x09


_BY_CODE = {c.code: c for c in (BadCrcError, BadOpcodeError, BadLengthError, TruncatedError,
                                OversizeError, RangeError, NotReadyError, OrderError,
                                ConflictError)}


def device_error_class(status):
    """The :class:`DeviceError` subclass of a status code (the base class if unknown)."""
    return _BY_CODE.get(int(status), DeviceError)


class DeviceTimeout(AnyprecError, TimeoutError):
    """The device did not answer (completely) within the timeout."""


class ProtocolError(AnyprecError):
    """A malformed frame: bad CRC, wrong tag or opcode echo, wrong length, bad field."""


class ModelMismatchError(AnyprecError, ValueError):
    """A model that does not fit the device (checked against ``INFO`` before sending)."""


class FieldError(AnyprecError, ValueError):
    """A value that does not fit the bits of its protocol field."""
