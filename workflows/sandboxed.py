"""Imported by every workflow module outside `imports_passed_through`, so the sandbox runs it:
the contract modules it imports (passed through) then sit in the sandbox's own module table,
where the data converter looks up the type hints of every result it decodes. A contract module
missing there fails the decoding of its types by name ("name 'Usage' is not defined")."""

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    import contracts.agent
    import contracts.budget
    import contracts.control
    import contracts.drift
    import contracts.investigation
    import contracts.results
    import contracts.roles
    import contracts.runs
    import contracts.sentry
    import contracts.steps  # noqa: F401
