"""anyprec simulation: cocotb 2 testbenches and the runner for Icarus and Verilator."""
