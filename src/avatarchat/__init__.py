"""avatarchat: a talking-avatar chat server (LLM -> TTS -> CPU lip-sync -> MP4 over WebSocket)."""

__version__ = "0.1.0"
