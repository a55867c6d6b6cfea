"""The recorder's web page (记录员工作台), served by the declarations service."""

from services.declarations.web.routes import router

__all__ = ["router"]
