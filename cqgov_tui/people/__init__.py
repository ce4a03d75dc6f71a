"""People and their work: the roster and who is on duty (``roster``), dispatch to a person and grid tasks
(``tasks``). Notifications to people are in ``cqgov_tui.notify``."""
