"""Department push-back: a department's own system sends events for the cases of its items (in review, correction
required, special procedure start and end, approved or denied with the result, delivered), authenticated as its
connector file's ``[push]`` section says, applied through the case state machine and recorded in the history with
the department as the actor (docs/departments.md)."""
