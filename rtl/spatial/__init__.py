"""RTL of the model-as-hardware target: weight regions compiled into logic (rtl/spatial/mvu.py)."""
