"""RTL of the programmable target (the integer ISA subset of a `matx-tiny`-style preset)."""
