from services.review.app import build
from shared.service import serve

serve(build())
