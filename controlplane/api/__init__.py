"""gRPC servicers: validate, authorise, map requests onto the store and the committer."""
