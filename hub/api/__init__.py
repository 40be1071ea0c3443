"""HTTP routes: thin. Parse, call one function of the hub, return."""
