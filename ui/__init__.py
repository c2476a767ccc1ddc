"""The Gradio app. It reaches flywheel only through the gateway's HTTP API, like any client."""
