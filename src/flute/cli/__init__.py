"""The `flute` command line: one thin module per command group (parse, call the library, print)."""
