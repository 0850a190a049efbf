"""cocotb testbenches for the RTL in rtl/, driven from pytest through testbenches.runner."""
