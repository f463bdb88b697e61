"""The Discord harness's fixtures (the real discord.py client on the gateway/REST stand-in, the scripted model)."""

from tests.discord.conftest import discord_settings, harness, resume_gateway_url  # noqa: F401
