"""The bot's knowledge base: ``intents.toml`` (data, not code), loaded by ``bot.nlu``."""

from pathlib import Path

INTENTS_PATH = Path(__file__).with_name("intents.toml")
