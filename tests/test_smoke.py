from fastapi.testclient import TestClient

from models.labels import TEXT_LABELS
from serving.app import create_app


def test_healthz_and_labels() -> None:
    client = TestClient(create_app())
    assert client.get("/healthz").json() == {"status": "ok"}
    names = [item["name"] for item in client.get("/v1/labels").json()["text"]]
    assert names == list(TEXT_LABELS)
