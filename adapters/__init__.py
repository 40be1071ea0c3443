"""Channel adapters: each knows one outside protocol and nothing about routing or storage."""
