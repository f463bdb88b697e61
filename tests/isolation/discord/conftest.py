"""The Discord harness's fixtures (the real discord.py client on the gateway/REST stand-in, the scripted model)."""

from tests.discord.conftest import discord_settings, harness  # noqa: F401
