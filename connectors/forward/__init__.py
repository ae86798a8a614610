"""Durable forwarding of statements from the LRS_EVENTS JetStream stream to another LRS."""
