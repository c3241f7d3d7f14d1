"""Example step modules for the dev mode: ``surefoot worker surefoot_worker.examples.orders``."""
