"""The review service (审核认定): verification, monthly certification, public notice, objections, corrections.

Decisions made here (each a default a county can discuss; settings are in ``settings.py``):

- One path per command (``handlers.handle``): HTTP parses and authorises and builds an immutable
  command (``domain/commands.py``); the handler reads the community stream's version, then the
  state the decision needs (a snapshot kept by ``evolve``, ``state.py``); ``decide`` (pure,
  ``domain/decide.py``) returns events or a refusal; the events are appended at the version read
  and folded with ``evolve`` (``domain/evolve.py``) into the snapshot, in one transaction. If
  someone appended first, the command is decided again on the new state, at most
  ``REVIEW_COMMAND_ATTEMPTS`` times, then answered 409.
- A page of looks (``POST /items/verifications``, up to 500, ``DecideItems``): each look is decided by
  the same ``decide`` as a single one, on the state the looks before it leave (``domain/page.py``);
  refused looks are reported with their code and reason, the rest stand (not all-or-nothing). Per
  community: one page lock (pages queue), one append at the version read, one snapshot write.
- Items come from the declarations topic (``items.py``); the service never reads another
  service's tables. Everything shown is a projection (``board.py``), read from one snapshot
  (``views.snapshot``).
- Every review event is on the stream ``community-<id>`` with key = community id, so a month's
  awards and its ``MonthCertified`` are one ordered sequence on one partition.
- Each leading-group member signs the digest of the month's list from their own session
  (``CertificationSigned``); nobody's credential travels in another's request. The signature that
  completes the quorum (the secretary plus ``REVIEW_QUORUM - 1`` others, each item needing
  ``REVIEW_QUORUM`` signers who neither declared nor recorded it) is appended with the awards and
  ``MonthCertified``. Certification refuses while an item still waits for a recorder's first look.
- No item in limbo: returned items are carried into the next month by the certification itself;
  items that reach review after their month was certified are carried by the late-item policy
  (``late_items.py``) or when a recorder looks at them (``ItemCarriedOver``).
- Separation of duties: nobody verifies, overrules or certifies an item they declared or
  recorded (``REVIEW_SELF_VERIFICATION_COMMUNITIES`` lists communities allowed to verify their own).
- A month counts downstream only once its ``MonthCertified`` and all ``count`` awards are
  applied and the count, total and digest match (``shared.events.review.CertifiedMonths``;
  the board's ``complete`` flag).
- The objection window runs ``REVIEW_OBJECTION_WINDOW_DAYS`` from the first posting of the
  notice; a month is final (``MonthFinalised``) once the window has closed and no objection is
  open. Upheld objections and supervisors' corrections are ``PointsCorrected`` events in the
  month open when made; nothing certified is ever edited. Reasons and pages print the county's
  time (Asia/Shanghai).
- The clock: a county admin may move it on a test or demo stack (``POST /admin/clock``, audited
  as ``ClockSet``, refused unless ``REVIEW_CLOCK_ADJUSTABLE``), to show a window closing.
"""
