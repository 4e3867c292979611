"""The commands: one module per command-line face (flags in, the package's functions called, output printed)."""
