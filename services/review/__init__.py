"""The review service (审核认定): verification, monthly certification, public notice, objections, corrections.

Decisions made here (each a default a county can discuss; settings are in ``settings.py``):

- Items come from the declarations topic (``items.py``); the service never reads another
  service's tables. Verification state is write-side state (``state.py``), changed in the same
  transaction as the event that changes it; everything shown is a projection (``board.py``).
- Every review event is on the stream ``community-<id>`` with key = community id, so a month's
  awards and its ``MonthCertified`` are one ordered sequence on one partition.
- Certification refuses while any item of the month still waits for a recorder's first look
  (otherwise those residents' points would silently drop into the late-item path); returned
  and rejected items are not certified. Quorum: the secretary plus ``REVIEW_QUORUM - 1`` other
  members; an item needs ``REVIEW_QUORUM`` signers who neither declared nor recorded it.
- A month counts downstream only once its ``MonthCertified`` and all ``count`` awards are
  applied and the count, total and digest match (``shared.events.review.CertifiedMonths``;
  the board's ``complete`` flag). The relay publishes in batches, so a reader may hold a prefix
  of a certification: by this rule it never counts one.
- The objection window runs ``REVIEW_OBJECTION_WINDOW_DAYS`` from the first posting of the
  notice; a month is final (``MonthFinalised``) once the window has closed and no objection is
  open. Upheld objections and supervisors' corrections are ``PointsCorrected`` events in the
  month open when made; nothing certified is ever edited.
"""
