"""The ``nok`` command line (Typer). The core library is :mod:`vault`."""
