"""Pure functions from an InboundMessage to a TicketDraft: Indonesian text, phones, NIK,
gazetteer, category, urgency, routing. Never touches a database, network or the clock."""
from normalizer.core import normalize
from normalizer.incidents import IncidentCandidate, category_family, is_repeat, match_incident
from normalizer.knowledge import Regency, RegencyConfigError, build_regency
from normalizer.learn import train_linear
from normalizer.router import train_router

__all__ = [
    "IncidentCandidate",
    "Regency",
    "RegencyConfigError",
    "build_regency",
    "category_family",
    "is_repeat",
    "match_incident",
    "normalize",
    "train_linear",
    "train_router",
]
