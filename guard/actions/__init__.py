"""Actions: kernel decisions and alerts, arming of dynamic verdicts, kill, modes and protected processes."""
