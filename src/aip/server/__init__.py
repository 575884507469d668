"""The REST API server (FastAPI) and ``aip up``."""
