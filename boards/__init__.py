"""anyprec board targets (amaranth-boards) and open-toolchain builds."""
