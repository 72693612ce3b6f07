"""One module per verb; each exposes a function callable without click."""
