"""The speech pipeline: sentences -> jobs -> TTS -> render + encode -> events, per session."""
