"""Self-hosted Whisper speech-to-text service."""
