"""What `serve/` and `train/` both need and neither owns.

The data folder's layout (`layout`), the machine's dtype and thread choice (`hardware`), the
default model (`default_model`) and the command line's gateway client (`gateway_client`). Nothing
here imports `serve/`, `train/`, `feedback/` or `ui/`: it is the bottom layer beside `feedback/`.
"""
