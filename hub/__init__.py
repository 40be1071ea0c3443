"""The Simpul hub: owns state (storage, tickets, outbox), the HTTP app, scheduler and CLI."""
__version__ = "0.1.0"
