"""Telemetry: collecting catalog values into the store (collector) and sending them (sender)."""


def includeme(config):
    config.include(".subscribers")
