"""The serving processes, the only part of model/ that touches the bus (server, worker, explainer, analyze)."""
