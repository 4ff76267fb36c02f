"""Helpers shared by test modules: served `rapidly` processes and live load clients."""
