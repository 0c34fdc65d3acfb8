"""Asynchronous jobs: audio accepted now, transcribed in the background at the lowest priority, kept on disk
(SQLite, or PostgreSQL shared by replicas) so that a restart loses nothing, and called back when done.
The domain: no HTTP server here (the face is stt/http/faces/jobs/)."""
