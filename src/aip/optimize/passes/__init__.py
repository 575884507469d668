"""The optimizer passes: each a function (ModelState, PassContext) -> PassOutcome."""
