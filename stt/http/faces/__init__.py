"""The API faces: one folder per API a client speaks (see ``face.py`` for what a face declares and
``registry.py`` for the list of faces an app serves)."""
