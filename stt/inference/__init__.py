"""Inference scheduling: uploads cut into windows at pauses, decoded in batches between other clients' work."""
