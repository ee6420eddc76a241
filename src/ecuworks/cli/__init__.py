"""The ``ecuworks`` command line: parses, calls the layers, renders."""
