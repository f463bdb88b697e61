"""``python -m bot`` is the ``membot`` command."""

from bot.cli import main

main()
