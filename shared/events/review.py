"""Events owned by the review service (verification, certification, notice, objections)."""
