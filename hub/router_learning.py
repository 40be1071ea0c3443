"""The router learns from the hub's own history: staff re-routes and `simpul router learn`
store (text, correct OPD) examples; the model is retrained from all of them and stored as JSON
in router_models. Never changes tickets; live routing picks the model up via hub.normalizer_loader."""
from __future__ import annotations

from sqlalchemy import func, select

from hub.models import RouterModel, RoutingExample
from hub.normalizer_loader import newest_model
from normalizer.router import add_example, train_router

MIN_EXAMPLES_FOR_MODEL = 20


def record_example(session, text: str, opd_code: str, source: str) -> RoutingExample:
    """Store one correct (text, OPD) pair; fold it into the newest model at once (Naive Bayes
    counts are additive), or train the first model once enough examples exist."""
    ex = RoutingExample(text=text, opd_code=opd_code.strip().upper(), source=source)
    session.add(ex)
    session.flush()
    row = newest_model(session)
    if row is not None and row.model:
        row.model = add_example(row.model, text, ex.opd_code)
        row.examples = int(row.model.get("examples", row.examples + 1))
        session.add(row)
    else:
        n = session.scalar(select(func.count()).select_from(RoutingExample)) or 0
        if n >= MIN_EXAMPLES_FOR_MODEL:
            retrain(session)
    return ex


def retrain(session) -> RouterModel:
    """Train on every stored example and insert a new RouterModel row."""
    pairs = [(t, o) for t, o in session.execute(select(RoutingExample.text, RoutingExample.opd_code))]
    model = train_router(pairs)
    row = RouterModel(examples=int(model["examples"]), model=model)
    session.add(row)
    session.flush()
    return row
