"""Hub side of the lines: pull jobs, outbox senders and intake helpers for each channel."""
