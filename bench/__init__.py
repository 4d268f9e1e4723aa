"""Hardware-in-the-loop test bench for GB smart meter firmware updates under SEC MP207."""

__version__ = "0.1.0"
