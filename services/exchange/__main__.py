from services.exchange.app import build
from shared.service import serve

serve(build())
