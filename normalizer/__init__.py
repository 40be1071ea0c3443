"""Pure functions from an InboundMessage to a TicketDraft: Indonesian text, phones, NIK,
gazetteer, category, urgency, routing. Never touches a database, network or the clock."""
