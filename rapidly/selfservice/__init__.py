"""The end user's own view: everything stored about them, to read, download and erase."""
