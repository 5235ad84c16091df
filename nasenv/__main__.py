"""``python -m nasenv``: the command line of :mod:`nasenv.cli`."""

from nasenv.cli import main

if __name__ == "__main__":
    main()
