"""Hospital / pharmacy systems' signed webhook (API.md "Institutions")."""

from __future__ import annotations

from aiohttp import web

from institution_api.routes import routes
from institution_api.signing import verify_signature
from server import keys
from server.domain.institutions import InstitutionDirectory


def create_subapp() -> web.Application:
    app = web.Application(middlewares=[verify_signature])
    app[keys.institution_directory_key] = InstitutionDirectory()
    app.add_routes(routes())
    return app
