"""Public works under citizens' eyes (issue #16): register, progress, money, red flags, citizens' reports."""
