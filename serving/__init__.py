"""The HTTP service (FastAPI on ONNX Runtime); needs no torch."""
