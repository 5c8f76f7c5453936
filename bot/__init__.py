"""The official-account (公众号) bot: webhook at /wechat/official.

``bot.app`` builds the sub-app; the router, NLU, dialogue and ``BotService`` answer a
message without HTTP (tests feed them XML)."""
