"""``python -m genframe`` (and ``torchrun -m genframe``) runs the CLI."""

from genframe.cli import main

if __name__ == "__main__":
    main()
