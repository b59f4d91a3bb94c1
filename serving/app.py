"""FastAPI application factory."""

from fastapi import FastAPI

from models.labels import TEXT_LABEL_DESCRIPTIONS, TEXT_LABELS


def create_app() -> FastAPI:
    app = FastAPI(title="qunguard", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/labels")
    def labels() -> dict[str, list[dict[str, object]]]:
        return {
            "text": [
                {"name": name, "description": TEXT_LABEL_DESCRIPTIONS[name], "threshold": None}
                for name in TEXT_LABELS
            ]
        }

    return app
