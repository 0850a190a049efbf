"""The numpy interpreter: the living definition of what an IR graph computes."""

from compiler.interp.run import InterpreterError, bind_inputs, run_graph

__all__ = ["InterpreterError", "bind_inputs", "run_graph"]
