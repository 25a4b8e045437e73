"""Textual front end. Imports the backend; the backend never imports this."""
