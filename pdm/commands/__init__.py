"""Subcommands of ``python -m pdm``; each module has ``register(subparsers)`` and ``run(args) -> exit code``."""
