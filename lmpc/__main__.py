"""``python -m lmpc`` is the ``lmpc`` command."""

from lmpc.cli import main

if __name__ == "__main__":
    main()
