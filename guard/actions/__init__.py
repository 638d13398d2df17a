"""Actions: verdicts, arming of dynamic verdicts, kill, rollback and modes."""
