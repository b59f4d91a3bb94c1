"""Dependencies that hand routes the running service (async: no thread hop).

Settings reach the routes through the service (`service.settings`): they are given to
`create_app`, so tests can build several apps with different settings side by side.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from serving.service import Service


async def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]
