"""The study's figures as tables a reader opens: written from metrics/ (and the benches' JSON),
never typed by hand. tables.py holds the pure "rows from metrics" functions that the docs'
generator and the report share."""
