"""The auditor's tools (``points-audit``): read the log as the read-only auditor, verify it, replay
it beside the live read models, explain a subject's figures and export a month's evidence."""
