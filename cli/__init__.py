"""`flywheel`: the command line, above `serve/` and `train/`, which never import each other."""
