"""The operator dashboard (`callagent dashboard`)."""
