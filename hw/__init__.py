"""anyprec gateware (Amaranth 0.5): bit-serial MAC array, plane memory, sequencer, top."""
