"""``python -m memex`` runs the command-line interface."""

from memex.interfaces.cli.app import main

main()
