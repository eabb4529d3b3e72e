"""`python -m lectern.cli`."""

from lectern.cli import main

main()
