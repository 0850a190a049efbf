"""Cost models of the programmable target, one small module per resource, each with its roofline."""
