"""``python -m edoc_axis`` runs the CLI."""

from edoc_axis.cli import main

main()
