"""``python -m aip``: the same as the ``aip`` command."""

from aip.cli.main import main

if __name__ == "__main__":
    main()
