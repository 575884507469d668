"""The ``aip`` command line (Typer + Rich). The entry point is ``aip.cli.main:main``.

Command modules import only Typer and the standard library at the top; the SDK, specs and
server are imported inside the commands, so ``aip --help`` starts fast.
"""
