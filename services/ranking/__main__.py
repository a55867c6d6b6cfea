from services.ranking.app import build
from shared.service import serve

serve(build())
