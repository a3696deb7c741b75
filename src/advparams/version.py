"""The toolkit's version, in a module of its own: every file the toolkit writes records
it, and importing it imports nothing else."""

__version__ = "0.1.0"
