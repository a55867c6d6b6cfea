from services.declarations.app import build
from shared.service import serve

serve(build())
