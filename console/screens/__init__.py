"""One screen per thing an operator looks at: runs, a run, dead letters, approvals."""
